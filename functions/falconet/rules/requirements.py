"""`required_engine_version` and `required_plugin_versions`: what a rules file needs of falconet.

falconet answers as the Falco engine and plugins it emulates (below): a file that needs a newer
engine, or a plugin falconet does not emulate, fails to load with the versions named, as in Falco.
"""

from __future__ import annotations

import re

from falconet import errors as errs
from falconet.rules.diagnostics import located
from falconet.rules.model import Position
from falconet.rules.reader import YamlNode

ENGINE_VERSION = (0, 63, 0)
# The plugins falconet emulates, for `required_plugin_versions`: k8saudit and json, and the
# provider variants whose inputs falconet's decoders read (their fields are k8saudit's).
PLUGIN_VERSIONS = {
    "k8saudit": (0, 18, 0),
    "k8saudit-eks": (0, 12, 0),
    "k8saudit-gke": (0, 9, 0),
    "k8saudit-aks": (0, 6, 0),
    "json": (0, 7, 4),
}
# ASCII digits only (`\d` and str.isdigit() also take '²' or '٣', which int() then refuses or
# reads), at most 10 per number: Falco reads a uint32. Compiled by `re` on first use.
_SEMVER = r"([0-9]{1,10})\.([0-9]{1,10})\.([0-9]{1,10})(?:[-+][0-9A-Za-z.+-]*)?\Z"
_NUMBER = r"[0-9]{1,10}\Z"
_UINT32 = 0xFFFFFFFF


def _version(text: str, what: str, position: Position) -> tuple[int, int, int]:
    """A version as Falco reads one: a uint32 N (engine version 0.N.0), else "x.y.z" semver."""
    text = text.strip()
    if re.match(_NUMBER, text) and int(text) <= _UINT32:
        return (0, int(text), 0)
    m = re.match(_SEMVER, text)
    if m is None or max(int(g) for g in m.groups()) > _UINT32:
        shown = text if len(text) <= 64 else text[:64] + "..."
        raise located(
            f"{what} '{shown}' is not a valid version", position, cls=errs.RequirementError
        )
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _compatible(have: tuple[int, int, int], need: tuple[int, int, int]) -> bool:
    return have[0] == need[0] and have >= need


def _fmt(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


def check_engine_version(node: YamlNode) -> None:
    """`required_engine_version`: RequirementError unless falconet's engine satisfies it."""
    need = _version(
        node.scalar("required_engine_version"), "required_engine_version", node.position
    )
    if not _compatible(ENGINE_VERSION, need):
        raise located(
            f"Rules require engine version {_fmt(need)}, but engine version is "
            f"{_fmt(ENGINE_VERSION)}",
            node.position,
            cls=errs.RequirementError,
        )


def check_plugin_versions(node: YamlNode) -> None:
    """`required_plugin_versions`: RequirementError unless one alternative of each entry is a
    plugin falconet emulates, at a compatible version."""
    for entry in node.sequence("required_plugin_versions"):
        group = entry.mapping("a required plugin")
        alternatives = [group]
        if "alternatives" in group:
            alternatives += [
                a.mapping("an alternative") for a in group["alternatives"].sequence("alternatives")
            ]
        names: set[str] = set()
        satisfied = False
        for alt in alternatives:
            if "name" not in alt or "version" not in alt:
                raise located(
                    "required plugin must have 'name' and 'version'",
                    entry.position,
                    cls=errs.RequirementError,
                )
            plugin = alt["name"].scalar("name")
            if plugin in names:
                raise located(
                    f"duplicate plugin alternative '{plugin}'",
                    entry.position,
                    cls=errs.RequirementError,
                )
            names.add(plugin)
            need = _version(alt["version"].scalar("version"), "plugin version", entry.position)
            have = PLUGIN_VERSIONS.get(plugin)
            if have is not None and _compatible(have, need):
                satisfied = True
        if not satisfied:
            wanted = ", ".join(
                f"{a['name'].scalar('name')} ({a['version'].scalar('version')})"
                for a in alternatives[:10]
            ) + (f" and {len(alternatives) - 10} more" if len(alternatives) > 10 else "")
            have_text = ", ".join(f"{k} {_fmt(v)}" for k, v in PLUGIN_VERSIONS.items())
            raise located(
                f"Plugin requirement not satisfied, must load one of: {wanted} "
                f"(falconet emulates {have_text})",
                entry.position,
                cls=errs.RequirementError,
            )
