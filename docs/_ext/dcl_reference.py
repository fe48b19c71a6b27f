"""Sphinx directives that generate reference pages from the code.

- ``dcl-cli-reference`` renders every sub-command of ``dcl`` and its options
  from the argparse parser of :func:`dcl_prob.cli.build_parser`, so the page
  cannot drift from the command line.
- ``dcl-api-reference`` emits one ``automodule`` section per module of the
  ``dcl_prob`` package, found by walking the package, so a new module appears
  in the API reference without editing the docs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

USAGE_WIDTH = 88


def _subcommands(parser: argparse.ArgumentParser):
    """Yield ``(name, help, parser)`` for each sub-command, in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                yield name, helps.get(name, ""), subparser


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    """Return the parser's help formatter at a fixed width, independent of the
    terminal that builds the docs."""
    return parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    """Return reStructuredText list-table rows for the arguments of ``parser``."""
    formatter = _formatter(parser)
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            name = ", ".join(f"``{flag}``" for flag in action.option_strings)
            if action.nargs != 0:
                name += f" ``{formatter._format_args(action, action.dest.upper())}``"
        else:
            name = f"``{action.dest}``"
        help_text = formatter._expand_help(action) if action.help else ""
        help_text = " ".join(help_text.split()).replace("*", r"\*")
        if action.option_strings and action.required:
            name += " (required)"
        rows += [f"   * - {name}", f"     - {help_text}"]
    return rows


def _parser_section(title: str, parser: argparse.ArgumentParser) -> list[str]:
    formatter = _formatter(parser)
    formatter.add_usage(
        parser.usage, parser._actions, parser._mutually_exclusive_groups
    )
    usage = formatter.format_help().strip()
    lines = [title, "-" * len(title), ""]
    if parser.description:
        lines += [" ".join(parser.description.split()), ""]
    lines += ["::", ""] + [f"   {line}" for line in usage.splitlines()] + [""]
    rows = _option_rows(parser)
    if rows:
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 35 65", ""]
        lines += ["   * - Argument", "     - Meaning"] + rows + [""]
    return lines


class CliReference(SphinxDirective):
    """Render the ``dcl`` command line from its argparse parser."""

    def run(self):
        from dcl_prob.cli import build_parser

        parser = build_parser()
        lines = _parser_section("dcl", parser)
        for name, help_text, subparser in _subcommands(parser):
            section = _parser_section(f"dcl {name}", subparser)
            if help_text and not subparser.description:
                section[3:3] = [help_text[0].upper() + help_text[1:] + ".", ""]
            lines += section
        return _parse(self.state, lines, "dcl-cli-reference")


class ApiReference(SphinxDirective):
    """Emit ``automodule`` for every module of the ``dcl_prob`` package."""

    def run(self):
        import dcl_prob

        names = ["dcl_prob"] + sorted(
            module.name
            for module in pkgutil.walk_packages(dcl_prob.__path__, "dcl_prob.")
            if not module.name.rsplit(".", 1)[-1].startswith("_")
        )
        lines = []
        for name in names:
            importlib.import_module(name)
            lines += [name, "-" * len(name), "", f".. automodule:: {name}"]
            lines += ["   :members:", "   :ignore-module-all:", ""]
        return _parse(self.state, lines, "dcl-api-reference")


def _parse(state, lines: list[str], source: str) -> list[nodes.Node]:
    """Parse generated reStructuredText, sections included, into nodes."""
    container = nodes.section()
    container.document = state.document
    nested_parse_with_titles(state, StringList(lines, source=source), container)
    return container.children


def setup(app):
    app.add_directive("dcl-cli-reference", CliReference)
    app.add_directive("dcl-api-reference", ApiReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
