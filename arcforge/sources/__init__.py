"""Where tasks come from: manifests, fetching and verifying upstream repositories, the cache, mirrors,
archives and their safety rules, and the files (members) a build reads."""
