import numpy as np
import pyarrow.parquet as pq
import pytest

from arcforge.build.shard_writer import write_shards
from arcforge.errors import ShardError
from arcforge.shards import iter_batches, list_shards, read_tasks
from arcforge.task import Pair, Task, tasks_to_table


def _tasks(n, source="s", split="training"):
    return [
        Task(
            f"{source}/{i:04d}",
            source,
            split,
            [Pair(np.full((1, 2), i % 10, np.int8), np.full((2, 1), (i + 1) % 10, np.int8))],
            [Pair(np.full((1, 1), i % 10, np.int8), np.full((1, 1), i % 7, np.int8))],
        )
        for i in range(n)
    ]


def test_write_layout_sorted_and_deterministic(tmp_path):
    tasks = _tasks(50, "b") + _tasks(30, "a", "evaluation") + _tasks(5, "a")
    t = tasks_to_table(tasks[::-1])
    infos = write_shards(t, tmp_path / "o1", shard_bytes=2000, row_group_rows=7)
    write_shards(t, tmp_path / "o2", shard_bytes=2000, row_group_rows=7)
    assert [i.path.as_posix() for i in infos][:2] == [
        "a/evaluation-00000-of-00003.parquet",
        "a/evaluation-00001-of-00003.parquet",
    ]
    for i in infos:
        assert (tmp_path / "o1" / i.path).read_bytes() == (tmp_path / "o2" / i.path).read_bytes()
    ids = [t.id for t in read_tasks(tmp_path / "o1", sources=["b"])]
    assert ids == sorted(ids) and len(ids) == 50
    assert sum(i.rows for i in list_shards(tmp_path / "o1", splits=["training"])) == 55


def test_rank_sharding_is_a_disjoint_cover(tmp_path):
    write_shards(tasks_to_table(_tasks(37)), tmp_path, shard_bytes=1500)
    parts = [[t.id for t in read_tasks(tmp_path, rank=r, world_size=3, batch_size=5)] for r in range(3)]
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat)) == 37
    assert abs(len(parts[0]) - len(parts[2])) <= 1


def test_shuffled_reading_permutes_row_groups_and_keeps_every_row(tmp_path):
    tasks = _tasks(40, "b") + _tasks(40, "a")
    write_shards(
        tasks_to_table(tasks), tmp_path, shard_bytes=3300, row_group_rows=8
    )  # rows ~ 40 B each: a few shards
    plain = [t.id for t in read_tasks(tmp_path)]
    assert plain == sorted(plain)  # stored order: source a, then b, each sorted by id
    one = [t.id for t in read_tasks(tmp_path, shuffle_seed=(0, 0))]
    assert sorted(one) == plain and one != plain
    assert one == [t.id for t in read_tasks(tmp_path, shuffle_seed=(0, 0))]  # deterministic per seed
    assert one != [t.id for t in read_tasks(tmp_path, shuffle_seed=(0, 1))]  # another epoch, another order
    # whole row groups move: consecutive runs of 8 ids stay together, and both sources show up early
    assert one[:8] == sorted(one[:8]) and {i.split("/")[0] for i in one[:24]} == {"a", "b"}
    parts = [
        [t.id for t in read_tasks(tmp_path, rank=r, world_size=3, shuffle_seed=(0, 0))] for r in range(3)
    ]
    assert sorted(i for p in parts for i in p) == plain  # still a disjoint cover under a shuffle


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(ShardError, match="dataset folder not found"):
        list(iter_batches(tmp_path / "missing"))
    (tmp_path / "x").mkdir()
    with pytest.raises(ShardError, match="no shards match"):
        list(iter_batches(tmp_path))
    with pytest.raises(ShardError, match="rank 3"):
        list(iter_batches(tmp_path, rank=3, world_size=2))


def test_each_rank_reads_only_its_own_row_groups(tmp_path, monkeypatch):
    write_shards(tasks_to_table(_tasks(64)), tmp_path, row_group_rows=8)
    everything = sorted(t.id for t in read_tasks(tmp_path))
    read: dict[int, list[tuple[str, int]]] = {}
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, row_groups=None, **kwargs):
        read.setdefault(current, []).extend((str(self.metadata), g) for g in row_groups)
        return real(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    groups = sum(pq.ParquetFile(tmp_path / i.path).num_row_groups for i in list_shards(tmp_path))
    assert groups >= 8
    parts = []
    for current in range(4):
        parts.append([t.id for t in read_tasks(tmp_path, rank=current, world_size=4, shuffle_seed=(1, 0))])
    assert sorted(i for p in parts for i in p) == everything
    assert {len(p) for p in parts} == {16}
    # every rank opened about a quarter of the row groups (8-row groups, 16-row ranges: 2, or 3 unaligned)
    assert all(len(read[r]) <= 3 for r in range(4))


def test_shards_of_an_older_build_read_with_empty_curation_columns(tmp_path):
    from arcforge.task import OPTIONAL_COLUMNS

    tasks = _tasks(6)
    tasks[0].derived_from, tasks[0].quality = ("arc_agi_1/training/007bbfb7",), "verified"
    infos = write_shards(tasks_to_table(tasks), tmp_path / "new")
    new = list(read_tasks(tmp_path / "new"))
    assert new[0].derived_from == ("arc_agi_1/training/007bbfb7",) and new[0].quality == "verified"
    infos = list(infos)
    old = tmp_path / "old" / infos[0].path
    old.parent.mkdir(parents=True)
    table = pq.read_table(tmp_path / "new" / infos[0].path)
    pq.write_table(table.drop_columns(list(OPTIONAL_COLUMNS)), old)  # as a build before lineage wrote it
    got = next(iter(iter_batches(tmp_path / "old")))
    assert got.column("derived_from").to_pylist() == [[]] * 6
    assert got.column("quality").to_pylist() == [""] * 6 and got.column("difficulty").null_count == 6
    assert [t.id for t in read_tasks(tmp_path / "old")] == [t.id for t in new]
    assert next(iter(read_tasks(tmp_path / "old"))).derived_from == ()
