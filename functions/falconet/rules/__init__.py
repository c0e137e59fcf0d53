"""The Falco rule language: loading rules files, parsing conditions, compiling them.

    from falconet.rules.loader import load_rules
    rules, ruleset = load_rules(["rules/"])     # ruleset.diagnostics: every problem, located

Loading runs in stages, one module each (see `loader`): `reader` -> `collector` -> `expand` ->
`parser` -> `resolver` -> `checker`. Then `index` files the rules by verb and resource,
`compiler` and `expressions` generate the evaluation code, and `reference` states the semantics
the generated code is tested against. Nothing here does I/O beyond reading rules files or reads
the environment.
"""
