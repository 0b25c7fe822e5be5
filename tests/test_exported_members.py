"""The public API: ``__all__`` lists exactly the public names of the package."""

import splitaudit


def test_all_matches_public_names():
    public = {name for name in dir(splitaudit) if not name.startswith("_")}
    # sub-modules are reachable as attributes but are not API names
    modules = {name for name in public if type(getattr(splitaudit, name)).__name__ == "module"}
    assert set(splitaudit.__all__) - {"__version__"} == public - modules
    for name in splitaudit.__all__:
        assert hasattr(splitaudit, name), name
