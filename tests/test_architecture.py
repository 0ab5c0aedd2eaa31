"""The code's shape, checked by reading it (issue 17, decision 0085)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "yuyue"

# `session.info` belongs to the session: `db.after_commit`'s hook list and the autocommit mark
# (db.py), and the replica router's mark (ops/replicas.py). Nothing else passes values through it:
# arguments travel as arguments (the booking's `Caller` carries the session check and the key).
SESSION_INFO_OWNERS = {"db.py", "ops/replicas.py"}
SESSION_NAMES = {"db", "reads", "primary"}
DICT_METHODS = {"get", "pop", "setdefault", "update", "clear", "items", "keys", "values"}


def session_info_uses(tree: ast.AST) -> list[int]:
    """Lines where `<session>.info` is read or written: `.info` of a name that is (or ends in) a
    session, or `.info` used as a mapping (`x.info[...]`, `x.info.get(...)`, `k in x.info`)."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "info":
            base = node.value
            if isinstance(base, ast.Name) and (base.id.endswith("session") or base.id in SESSION_NAMES):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and _is_info(node.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr in DICT_METHODS and _is_info(node.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if any(_is_info(right) for right in node.comparators):
                lines.append(node.lineno)
    return sorted(set(lines))


def _is_info(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "info"


def test_session_info_only_in_its_owners() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name in SESSION_INFO_OWNERS:
            continue
        lines = session_info_uses(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[name] = lines
    assert found == {}, f"session.info used outside {sorted(SESSION_INFO_OWNERS)}: {found}"


def test_the_check_sees_the_old_flags() -> None:
    """The checker itself: the three booking flags as they were written before decision 0085's
    follow-up are caught; `ctx.info` (a service's facts) is not."""
    caught = [
        "found = session.info.get(_LOGIN)",
        "session.info[_PENDING] = (citizen_id, sid)",
        "keyed = session.info.pop(KEYED, None)",
        "marked = KEY in reads.info",
        "x = db.info",
    ]
    for source in caught:
        assert session_info_uses(ast.parse(source)) == [1], source
    assert session_info_uses(ast.parse("hall = ctx.info.hall_path\nlog.info('x')")) == []
