"""The public API: what ``wsclient`` and ``wsclient.server`` export."""

from __future__ import annotations
import __future__

import dataclasses
import inspect
import subprocess
import sys
import types
from collections.abc import Mapping

import pytest

import wsclient
import wsclient.server


def public_names(module: types.ModuleType) -> set[str]:
    """Names a user sees in ``dir(module)``, minus submodules and __future__ flags."""
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
        and not isinstance(getattr(module, name), __future__._Feature)
    }


def own_docstring(obj: object) -> str:
    """The docstring written for ``obj`` itself, not inherited or generated."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not isinstance(doc, str):
        return ""
    if dataclasses.is_dataclass(obj) and doc.startswith(
        f"{getattr(obj, '__name__', '')}("
    ):
        return ""  # The signature that @dataclass writes when there is none.
    return doc.strip()


def test_all_matches_public_names() -> None:
    """wsclient.__all__ lists exactly the public names the package defines."""
    assert set(wsclient.__all__) == public_names(wsclient)


def test_all_has_no_duplicates() -> None:
    """wsclient.__all__ lists each name once."""
    assert len(wsclient.__all__) == len(set(wsclient.__all__))


@pytest.mark.parametrize("name", wsclient.__all__)
def test_exported_name_resolves(name: str) -> None:
    """Every name in wsclient.__all__ exists and survives a star import."""
    namespace: dict[str, object] = {}
    exec("from wsclient import *", namespace)
    assert namespace[name] is getattr(wsclient, name)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in wsclient.__all__
        if inspect.isclass(getattr(wsclient, n))
        or inspect.isfunction(getattr(wsclient, n))
    ],
)
def test_exported_class_or_function_has_docstring(name: str) -> None:
    """Every class and function in wsclient.__all__ has its own docstring."""
    assert own_docstring(getattr(wsclient, name))


@pytest.mark.parametrize("name", ["CLOSE_CODES", "HANDSHAKE_STATUSES", "KIND_VERDICTS"])
def test_tables_are_mappings(name: str) -> None:
    """The classification tables are exported as mappings to (retry, why) pairs."""
    table = getattr(wsclient, name)
    assert isinstance(table, Mapping)
    assert table
    for retry, why in table.values():
        assert isinstance(retry, bool)
        assert isinstance(why, str)
        assert why


@pytest.mark.parametrize(
    "name",
    [
        name
        for name, member in vars(wsclient.Client).items()
        if not name.startswith("_")
        and (inspect.isfunction(member) or isinstance(member, property))
    ],
)
def test_client_public_members_have_docstrings(name: str) -> None:
    """Every public method and property of Client has a docstring."""
    assert own_docstring(vars(wsclient.Client)[name])


def test_version_is_str() -> None:
    """wsclient.__version__ is a version string."""
    assert isinstance(wsclient.__version__, str)
    assert wsclient.__version__


def test_server_exports() -> None:
    """wsclient.server exports Server, ServerCounters and serve."""
    assert {"Server", "ServerCounters", "serve"} <= set(wsclient.server.__all__)
    for name in ("Server", "ServerCounters", "serve"):
        assert hasattr(wsclient.server, name)


def test_server_all_matches_public_names() -> None:
    """wsclient.server.__all__ lists exactly its public names."""
    assert set(wsclient.server.__all__) == public_names(wsclient.server)


@pytest.mark.parametrize("name", ["Server", "ServerCounters", "serve"])
def test_server_exports_have_docstrings(name: str) -> None:
    """The server's exported classes and functions have their own docstrings."""
    assert own_docstring(getattr(wsclient.server, name))


def test_server_module_has_docstring() -> None:
    """Both public modules have a docstring."""
    assert wsclient.__doc__
    assert wsclient.server.__doc__


def test_import_loads_no_backend() -> None:
    """``import wsclient`` imports neither trio (an optional dependency) nor
    websockets' client modules: they load with the first connection."""
    code = (
        "import sys, wsclient; "
        "loaded = [m for m in ('trio', 'websockets.trio.client', "
        "'websockets.asyncio.client') if m in sys.modules]; "
        "print(loaded)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
