"""Rules text built from fuzz bytes by the rule language's grammar, for the rule fuzz targets.

Byte mutations of real files rarely reach the checks behind a parse (a glob set with a reversed
range, an argument of 20 digits, a right-hand field under `regex`): here each byte picks the next
production (a check, `and`, `or`, `not`, a field, an argument, an operator, a value, an output
token, a YAML item and its keys), from vocabularies that hold the values the loader must refuse
or survive. The same bytes always give the same text.
"""

from __future__ import annotations

from falconet import fields

FIELDS = sorted(f.name for f in fields.iter_fields())
NUMERIC = sorted(f.name for f in fields.iter_fields() if f.type == "number")
OPERATORS = (
    "=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains", "bcontains", "startswith",
    "bstartswith", "endswith", "glob", "iglob", "regex", "in", "intersects", "pmatch", "exists",
    "startswith anyof", "= oneof", "!= allof", "regex anyof", "in oneof", "oneof in",
)  # fmt: skip
VALUES = (
    "x", "get", "pods", "system:masters", '""', "''", '"a b"', "*", "?", "[z-a]", "[!a-c]*",
    "[[:alpha:]-]", "\\", "(a|b)+", "a{1001}", "\\d", "(?i)a", "a(?=b)", "/api/*", "0", "-1",
    "9" * 25, "1e5", "0x1F", "é\u202e", '"\\x41"', "'\\''", "%", "(a, b)", "()", "(fuzz_list)",
    "fuzz_list", "val(ka.user.name)", "val(ka.req.pod.containers.image)", "val(jevt.value[/a])",
    "val(evt.rawtime)", "val(evt.time)", "val(ka.response.code)", "val(ka.verb[0])",
    "tolower(ka.verb)", "b64(ka.user.name)", "basename(toupper(ka.uri))", "(get, 'a b', \"c\")",
    "len(ka.user.groups)", 'join(",", ka.user.groups)', 'join("-", (ka.verb, "x", 1))',
    'concat(ka.verb, "/", tolower(ka.uri))', 'concat("a", "b")', "join(ka.verb)", "len(evt.num)",
    "true", "null", "[", "]", ",", "=", "(", ")", "not", "and", "or",
)  # fmt: skip
ARGUMENTS = (
    "0", "1", "01", "abc", "9" * 20, "9" * 19, "/user/username", "/items/" + "1" * 30, "",
    '"quoted"', "'q'", "/a~1b/c~0d", "command", "/*",
)  # fmt: skip
TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "val", "len")
PRIORITIES = ("WARNING", "notice", "Emergency", "LOUD", "", "debug")
NAMES = ("a", "b", "m", "fuzz_list", "R", "x y", "", "ka.verb", "m1")


class Stream:
    """The fuzz bytes, read one choice at a time (0 once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return options[self.byte() % len(options)]

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def operand(s: Stream) -> str:
    choice = s.byte()
    name = s.pick(NUMERIC if choice & 0x60 == 0x60 else FIELDS)  # numeric fields are few
    if choice % 4 == 1:
        name += "[" + s.pick(ARGUMENTS) + "]"
    elif choice % 4 == 2:
        name += '["' + s.pick(ARGUMENTS).replace('"', '\\"') + '"]'
    if choice & 0x10:
        name = f"{s.pick(TRANSFORMERS)}({name})"
    return name


def condition_of(s: Stream, depth: int = 0) -> str:
    """A condition: checks joined by and/or/not, up to 5 levels (macro names and lists too)."""
    choice = s.byte() % 12
    if depth < 5 and not s.done:
        if choice == 0:
            return f"({condition_of(s, depth + 1)} and {condition_of(s, depth + 1)})"
        if choice == 1:
            return f"({condition_of(s, depth + 1)} or {condition_of(s, depth + 1)})"
        if choice == 2:
            return f"not {condition_of(s, depth + 1)}"
    if choice == 3:
        return s.pick(NAMES)  # a macro reference, or not
    op = s.pick(OPERATORS)
    if op == "exists":
        return f"{operand(s)} exists"
    left = operand(s)
    if s.byte() % 4 == 0:  # a field on the right: val() or a transformer
        right = operand(s)
        return f"{left} {op} {right if '(' in right else f'val({right})'}"
    return f"{left} {op} {s.pick(VALUES)}"


def output_of(s: Stream) -> str:
    """An output: text and `%field` tokens, with widths and arguments."""
    parts = []
    for _ in range(1 + s.byte() % 4):
        choice = s.byte()
        width = str(s.byte() * (4 if choice & 1 else 1)) if choice & 2 else ""
        token = "%" + width + s.pick(FIELDS)
        if choice & 4:
            token += "[" + s.pick(ARGUMENTS) + "]"
        if choice & 8:  # a transformer token: printed, not an output field
            token = "%" + width + s.pick(("len", "tolower", "join")) + "(" + token[1 + len(width) :]
            token += ")" if not token.startswith(f"%{width}join") else ""
        parts.append(s.pick(("x=", " ", "%", "(", "é", "")) + token)
    return "".join(parts)


def scalar(text: str) -> str:
    """`text` as a YAML double-quoted scalar that reads back as exactly `text`."""
    out = ['"']
    for c in text:
        code = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= code < 0x7F:
            out.append(c)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\uFFFD")  # YAML has no lone surrogates
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _amend(s: Stream, key: str) -> str:
    """How an item amends an earlier one: nothing, `append: true`, or an override."""
    choice = s.byte() % 6
    if choice == 1:
        return "  append: true\n"
    if choice == 2:
        return f"  override:\n    {key}: append\n"
    if choice == 3:
        return f"  override:\n    {key}: replace\n"
    if choice == 4:
        return f"  override:\n    {s.pick(('enabled', 'priority', 'tags', 'x'))}: replace\n"
    return ""


def _exceptions(s: Stream) -> str:
    fields_ = [s.pick(FIELDS) for _ in range(1 + s.byte() % 3)]
    comps = [s.pick(OPERATORS) for _ in fields_]
    values = ", ".join(
        "[" + ", ".join(scalar(s.pick(VALUES)) for _ in fields_) + "]" for _ in range(s.byte() % 4)
    )
    if s.byte() & 1:  # the single-field form
        return (
            f"  exceptions:\n  - name: {s.pick(NAMES) or 'e'}\n    fields: {fields_[0]}\n"
            f"    comps: {s.pick(('in', 'pmatch', 'intersects', '='))}\n"
            f"    values: [{', '.join(scalar(s.pick(VALUES)) for _ in range(s.byte() % 3))}]\n"
        )
    return (
        f"  exceptions:\n  - name: {s.pick(NAMES) or 'e'}\n"
        f"    fields: [{', '.join(fields_)}]\n    comps: [{', '.join(scalar(c) for c in comps)}]\n"
        f"    values: [{values}]\n"
    )


def item(s: Stream) -> str:
    """One top-level item of a rules file."""
    kind = s.byte() % 8
    name = scalar(s.pick(NAMES))
    if kind in (0, 1):
        items = ", ".join(scalar(s.pick((*NAMES, *VALUES))) for _ in range(s.byte() % 5))
        anchor = "&a " if s.byte() & 1 else ""
        return f"- list: {name}\n  items: {anchor}[{items}]\n" + _amend(s, "items")
    if kind == 2:
        return f"- macro: {name}\n  condition: {scalar(condition_of(s))}\n" + _amend(s, "condition")
    if kind in (3, 4, 5):
        text = f"- rule: {name}\n"
        keys = s.byte()
        if keys & 1:
            text += f"  condition: {scalar(condition_of(s))}\n"
        if keys & 2:
            text += f"  output: {scalar(output_of(s))}\n"
        if keys & 4:
            text += f"  desc: {scalar(s.pick(VALUES))}\n"
        if keys & 8:
            text += f"  priority: {scalar(s.pick(PRIORITIES))}\n"
        if keys & 16:
            text += f"  source: {s.pick(('k8s_audit', 'syscall', 'aws_cloudtrail'))}\n"
        if keys & 32:
            text += f"  enabled: {s.pick(('true', 'false', 'maybe'))}\n"
        if keys & 64:
            text += _exceptions(s)
        if keys & 128:
            text += "  tags: [" + ", ".join(s.pick(NAMES) or "t" for _ in range(2)) + "]\n"
        return text + _amend(s, s.pick(("condition", "output", "exceptions", "tags", "desc")))
    if kind == 6:
        version = s.pick(("0.26.0", "15", "²", "9" * 30, "1.2", "", "0.63.0-rc1"))
        return f"- required_engine_version: {scalar(version)}\n"
    plugin = s.pick(("k8saudit", "json", "other", "k8saudit-eks"))
    return (
        f"- required_plugin_versions:\n  - name: {plugin}\n"
        f"    version: {scalar(s.pick(('0.1.0', '99.0.0', 'x', '0.18.0')))}\n"
        f"    alternatives:\n    - name: json\n      version: 0.7.0\n"
    )


def rules_file(data: bytes) -> str:
    """A rules file of items, each a production of the bytes."""
    s = Stream(data)
    text = "- required_engine_version: 15\n"
    while not s.done and len(text) < 65536:
        text += item(s)
    return text
