"""Tokens of packetdrill's script language.

The rules are those of packetdrill's flex lexer, restated: at each position the
longest match wins, ties go to the earlier rule. So ``1000`` is an integer but
``0123456789abcdef`` (a Fast Open cookie) is a word, ``.1...0.200`` is a float, an
ellipsis and a float, ``1:1001`` is an integer, ``:`` and an integer (an IPv6
address needs ``::`` or eight groups). Comments are ``//`` to the end of the line
and ``/* */``. ``%{ ... }%`` is one CODE token, a backquoted command one
BACKQUOTED token.

A word that names a ``-D NAME=VALUE`` symbol is replaced by its value, typed as
packetdrill types it: ``"x"`` a string, a backquoted value a command, a number an
integer, anything else a word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


class DrillSyntaxError(Exception):
    """A script the language does not allow; ``str()`` is ``FILE:LINE: error: reason``."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: error: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its value, the text it came from and its line."""

    kind: str     # OPTION FLOAT INTEGER HEX WORD STRING BACKQUOTED CODE IPV4 IPV6 ELLIPSIS CHAR EOF
    value: object
    text: str
    line: int


_SEG = r"[0-9a-fA-F]{1,4}"
_IPV6 = (rf"(?:::ffff:[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"
         rf"|(?:{_SEG}:){{7}}{_SEG}"
         rf"|(?:{_SEG}(?::{_SEG})*)?::(?:{_SEG}(?::{_SEG})*)?)")

# (kind, pattern) in flex's order: ties in length go to the earlier one.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern)) for kind, pattern in (
        ("ELLIPSIS", r"\.\.\."),
        ("OPTION", r"--[a-zA-Z0-9_]+"),
        ("FLOAT", r"-?[0-9]*\.[0-9]+"),
        ("INTEGER", r"-?[0-9]+"),
        ("HEX", r"0x[0-9a-fA-F]+"),
        ("WORD", r"[a-zA-Z0-9_]+#?"),
        ("STRING", r'"(?:\\.|[^"])*"'),
        ("BACKQUOTED", r"`(?:\\.|[^`])*`"),
        ("SPACE", r"[ \t\r\n]+"),
        ("COMMENT", r"//[^\n]*(?:\n|$)"),
        ("COMMENT", r"/\*(?:[^*]|\*(?!/))*\*/"),
        ("CODE", r"%\{(?:[^}]|\}(?!%))*\}%"),
        ("IPV4", r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"),
        ("IPV6", _IPV6),
    ))
_WORD_HASH = "sequence#"   # the one word with a '#'


def _code(text: str) -> str:
    """The inside of ``%{ }%`` without the spaces and tabs at either end."""
    return text[2:-2].strip(" \t")


def tokenize(text: str, path: str = "<script>",
             defines: Mapping[str, str] | None = None) -> list[Token]:
    """Every token of ``text``, ending with an EOF token."""
    defines = defines or {}
    tokens: list[Token] = []
    pos, line, n = 0, 1, len(text)
    while pos < n:
        best_kind, best_end = "", pos
        for kind, pattern in _RULES:
            m = pattern.match(text, pos)
            if m and m.end() > best_end:
                best_kind, best_end = kind, m.end()
        lexeme = text[pos:best_end]
        if best_kind == "WORD" and lexeme.endswith("#") and lexeme != _WORD_HASH:
            lexeme, best_end = lexeme[:-1], best_end - 1
        if not best_kind:
            ch = text[pos]
            if ch in "\"`":
                what = "string" if ch == '"' else "command"
                raise DrillSyntaxError(path, line, f"unterminated {what}")
            if text.startswith("/*", pos):
                raise DrillSyntaxError(path, line, "unterminated comment")
            if text.startswith("%{", pos):
                raise DrillSyntaxError(path, line, "unterminated %{ code block")
            best_kind, best_end, lexeme = "CHAR", pos + 1, ch
        if best_kind not in ("SPACE", "COMMENT"):
            tokens.append(_token(best_kind, lexeme, line, defines))
        line += lexeme.count("\n")
        pos = best_end
    tokens.append(Token("EOF", None, "end of file", tokens[-1].line if tokens else line))
    return tokens


def _token(kind: str, lexeme: str, line: int, defines: Mapping[str, str]) -> Token:
    value: object = lexeme
    if kind == "FLOAT":
        value = float(lexeme)
    elif kind == "INTEGER":
        value = int(lexeme)
    elif kind == "HEX":
        value = int(lexeme, 16)
    elif kind == "OPTION":
        value = lexeme[2:]
    elif kind in ("STRING", "BACKQUOTED"):
        value = lexeme[1:-1]
    elif kind == "CODE":
        value = _code(lexeme)
    elif kind == "WORD" and lexeme in defines:
        return _defined(lexeme, defines[lexeme], line)
    return Token(kind, value, lexeme, line)


def _defined(name: str, value: str, line: int) -> Token:
    """A -D symbol's value, typed as packetdrill's ``word()`` types it."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return Token("STRING", value[1:-1], name, line)
    if len(value) >= 2 and value[0] == value[-1] == "`":
        return Token("BACKQUOTED", value[1:-1], name, line)
    try:
        return Token("INTEGER", int(value, 0), name, line)
    except ValueError:
        return Token("WORD", value, name, line)
