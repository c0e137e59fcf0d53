"""The limits on what a rules file may ask of the loader, and why each value.

Rules files may come from others (a vendor's pack, a shared repository), and every cold start
loads them: whatever a file holds, loading ends in bounded time and memory, and past one of these
limits with a located `RuleLimitError` naming the limit. Each value is far above what real
rulesets use (measured on the bundled rules, upstream's k8s_audit_rules.yaml and Falco's 150 KB
falco_rules.yaml), and close enough to it that the worst file within the limits loads in seconds.
"""

from __future__ import annotations

# A rules file's size. Falco's largest ruleset is 150 KB, the bundled one 82 KB; composing 1 MiB
# of the smallest YAML nodes takes ~2 s and ~200 MB.
MAX_FILE_BYTES = 1 << 20

# What YAML aliases may add to a document (each `*alias` repeats its anchored node), counting a
# node as 1 and a scalar as its length: a 674-byte file of nested aliases expanded to 43 million
# values (past two minutes and 5 GB), and 100,000 aliases of one 1 MB scalar make 100 GB of text.
MAX_ALIAS_EXPANSION = 1_000_000

# The nesting of YAML values read as plain data (exception values, list items): a rules file
# needs 7 levels; libyaml allows 1,000, past Python's recursion limit for a recursive reader.
MAX_YAML_DEPTH = 64

# A condition after list substitution and exceptions, in characters. The largest real one is
# 6 KB; lists are substituted as text, so one list named many times multiplies its size.
MAX_CONDITION_CHARS = 1 << 20
# The characters list substitution produces and searches in all, over every macro and rule of a
# load (Falco's 150 KB ruleset: 0.2 MB): the produced text is parsed, ~0.4 s per MB.
MAX_TOTAL_CONDITION_CHARS = 16 << 20
# The items of every list once the lists it names are expanded: a list naming a list of 100,000
# items 50,000 times made 5 billion items (Falco's ruleset: 1,005).
MAX_LIST_ITEMS = 1_000_000

# A rule's condition after macro expansion, in checks and operators: macros are shared trees, so
# 40 macros each naming the previous one twice make 2**40 checks (the largest real rule has 454).
MAX_CONDITION_NODES = 20_000
# The same, summed over every rule (each rule's tree is indexed and compiled on its own).
MAX_TOTAL_CONDITION_NODES = 200_000

# The nesting of `and`, `or` and `not` in a rule's condition after macro expansion (real rules: 7).
# The generated Python nests one parenthesis per level and Python's parser stops at 200.
MAX_CONDITION_DEPTH = 100

# Macros whose resolution is in progress at once (each macro naming one not yet resolved): the
# resolver recurses once per macro.
MAX_MACRO_NESTING = 100

# The widest `%Nfield` of an output: each alert pads the value to N characters (`%200000000ka.verb`
# made every alert 200 MB). Falco renders a list value into 1,024 bytes.
MAX_OUTPUT_WIDTH = 1024
