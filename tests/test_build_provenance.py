"""A real build carries provenance that publish accepts: the seam between build and publish."""

import pytest

from arcforge.build.provenance import read_provenance
from arcforge.errors import PublishError
from arcforge.hub.plan import check_sources, collect_files
from arcforge.sources.manifest import load_manifests


def test_real_build_has_provenance_publish_accepts(full_build, mirrored_names):
    out, _stats = full_build
    prov = read_provenance(out)
    ms = load_manifests()
    by_name = {s.name: s for s in prov.sources}
    assert set(by_name) == mirrored_names
    for name, s in by_name.items():
        assert (s.repo, s.commit, s.license) == (ms[name].repo, ms[name].commit, ms[name].license)
    tree = collect_files(out)
    assert "provenance.json" in {f.path_in_repo for f in tree.files}
    # arc_community has no license: refused unless explicitly allowed.
    with pytest.raises(PublishError, match="arc_community"):
        check_sources(tree, prov, allow_unknown_license=False)
    check_sources(tree, prov, allow_unknown_license=True)
