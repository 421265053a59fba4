"""The layers import downwards only: what runs in a car (selfdrive, hardware, common, cereal) never imports the
tools (the simulator, replay, importers, the CLI), so a car's stack does not depend on them and no simulator rule can
hide in onboard code. Tests may reach anywhere."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONBOARD = ("selfdrive", "hardware", "common", "cereal")
ABOVE = ("tools",)


def modules(top: str):
    for dirpath, dirnames, files in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if d != "tests" and not d.startswith(".")]
        for f in files:
            if f.endswith(".py") and not f.startswith("test_"):
                yield os.path.join(dirpath, f)


def imported(path: str) -> set[str]:
    """Every module an import statement in the file names, also those inside functions."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_the_walk_sees_an_import_inside_a_function(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from tools.sim import bridge\n    import tools.cli\n")
    assert imported(str(p)) == {"tools.sim", "tools.cli"}


@pytest.mark.parametrize("top", ONBOARD)
def test_onboard_code_never_imports_the_tools(top):
    bad = [f"{os.path.relpath(p, ROOT)}: {m}" for p in modules(top) for m in sorted(imported(p))
           if m.split(".")[0] in ABOVE]
    assert bad == [], "onboard modules importing the tools:\n" + "\n".join(bad)


@pytest.mark.parametrize("package, peer", [("selfdrive/controls", "selfdrive.selfdrived"),
                                           ("selfdrive/selfdrived", "selfdrive.controls")])
def test_controlsd_and_selfdrived_talk_only_through_their_messages(package, peer):
    """What controlsd needs of an alert (its sound, its icon) comes in selfdriveState, not from selfdrived's tables;
    what both need (the car's parameters) lives below both."""
    bad = [f"{os.path.relpath(p, ROOT)}: {m}" for p in modules(package) for m in sorted(imported(p))
           if m == peer or m.startswith(peer + ".")]
    assert bad == [], "\n".join(bad)
