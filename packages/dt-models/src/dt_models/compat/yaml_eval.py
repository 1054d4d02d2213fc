"""detectron2 YAML files with ``!!python/object/apply:eval ["<expression>"]`` values, read safely.

detectron2's Base-RetinaNet.yaml computes its anchor sizes with such an expression, which PyYAML's
unsafe loader would hand to Python's ``eval``. Here the YAML is read with a safe loader that keeps
the expression as text, and :func:`restricted_eval` computes it with a small interpreter that knows
only numbers, lists/tuples, list comprehensions over them, and arithmetic; anything else (names
that are not comprehension variables, calls, attributes, strings, subscripts, ...) is rejected with
a reason, and the error names the file and the key.
"""

from __future__ import annotations

import ast
import math
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dt_config import ConfigError

__all__ = ["EVAL_TAG", "ExpressionError", "load_yaml_with_eval", "restricted_eval"]

EVAL_TAG = "tag:yaml.org,2002:python/object/apply:eval"
"""The tag PyYAML gives ``!!python/object/apply:eval``."""

_MAX_EXPRESSION_CHARS = 10_000
_MAX_ELEMENTS = 100_000  # list elements built by one expression
_MAX_EXPONENT = 1024
_MAX_INT_BITS = 4096

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class ExpressionError(ValueError):
    """An expression :func:`restricted_eval` refuses or cannot compute; the message says why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


class _Interpreter:
    def __init__(self) -> None:
        self.elements = 0

    def eval(self, node: ast.AST, names: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            if not _is_number(node.value):
                raise ExpressionError(f"only numbers are allowed as constants, got {_describe(node)}")
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            values = [self.eval(e, names) for e in node.elts]
            self._count(len(values))
            return values if isinstance(node, ast.List) else tuple(values)
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ExpressionError(f"unknown name {node.id!r} (only comprehension variables are allowed)")
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return self._arithmetic(node, _UNARY[type(node.op)], self.eval(node.operand, names))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.eval(node.left, names), self.eval(node.right, names)
            if isinstance(node.op, ast.Pow) and _is_number(right) and abs(right) > _MAX_EXPONENT:
                raise ExpressionError(f"exponent {right} is larger than {_MAX_EXPONENT} in {_describe(node)}")
            return self._arithmetic(node, _BINARY[type(node.op)], left, right)
        if isinstance(node, ast.ListComp):
            return self._list_comprehension(node, node.generators, names)
        kind = {
            ast.Call: "function calls",
            ast.Attribute: "attribute access",
            ast.Subscript: "subscripts",
        }.get(type(node), f"{type(node).__name__} expressions")
        raise ExpressionError(
            f"{kind} are not allowed (only numbers, lists, comprehensions and arithmetic), "
            f"got {_describe(node)}"
        )

    def _count(self, n: int) -> None:
        self.elements += n
        if self.elements > _MAX_ELEMENTS:
            raise ExpressionError(f"builds more than {_MAX_ELEMENTS} list elements")

    def _arithmetic(self, node: ast.AST, op: Any, *operands: Any) -> Any:
        if not all(_is_number(v) for v in operands):
            raise ExpressionError(f"arithmetic is allowed on numbers only, in {_describe(node)}")
        try:
            result = op(*operands)
        except (ArithmeticError, ValueError) as e:
            raise ExpressionError(f"{e} in {_describe(node)}") from None
        if isinstance(result, complex):
            raise ExpressionError(f"complex result in {_describe(node)}")
        if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
            raise ExpressionError(f"integer larger than 2**{_MAX_INT_BITS} in {_describe(node)}")
        if isinstance(result, float) and not math.isfinite(result):
            raise ExpressionError(f"non-finite result in {_describe(node)}")
        return result

    def _list_comprehension(
        self, node: ast.ListComp, generators: list[ast.comprehension], names: dict[str, Any]
    ) -> list[Any]:
        first, rest = generators[0], generators[1:]
        if first.ifs or first.is_async:
            raise ExpressionError(f"comprehension conditions are not allowed, in {_describe(node)}")
        if not isinstance(first.target, ast.Name):
            raise ExpressionError(f"a comprehension variable must be a plain name, in {_describe(node)}")
        iterable = self.eval(first.iter, names)
        if not isinstance(iterable, (list, tuple)):
            raise ExpressionError(f"a comprehension must iterate over a list, in {_describe(node)}")
        out: list[Any] = []
        for value in iterable:
            scope = {**names, first.target.id: value}
            if rest:
                out.extend(self._list_comprehension(node, rest, scope))
            else:
                out.append(self.eval(node.elt, scope))
                self._count(1)
        return out


def restricted_eval(expression: str) -> Any:
    """The value of ``expression`` made of numbers, lists, tuples, list comprehensions and ``+ - * /
    // % **``; ``ExpressionError`` saying why for anything else.

    ``restricted_eval("[[x, x * 2**(1.0/3)] for x in [32, 64]]")`` is ``[[32, 40.3...], [64, 80.6...]]``,
    the same numbers Python's ``eval`` gives.
    """
    if not isinstance(expression, str):
        raise ExpressionError(f"expected the expression as a string, got {type(expression).__name__}")
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"not a Python expression ({e.msg})") from None
    return _Interpreter().eval(tree.body, {})


@dataclass(frozen=True)
class _Expression:
    """An eval-tagged value as read: its arguments and the line it is on (1-based)."""

    arguments: list[Any]
    line: int


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that keeps ``!!python/object/apply:eval`` values as :class:`_Expression`."""


def _construct_expression(loader: yaml.SafeLoader, node: yaml.Node) -> _Expression:
    arguments = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else [None]
    return _Expression(arguments=list(arguments), line=node.start_mark.line + 1)


_Loader.add_constructor(EVAL_TAG, _construct_expression)


def _resolve(value: Any, key: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, f"{key}.{k}" if key else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, _Expression):
        return value
    where = f"{key} (line {value.line}): !!python/object/apply:eval"
    if len(value.arguments) != 1 or not isinstance(value.arguments[0], str):
        problems.append(f"{where} needs exactly one string argument, got {value.arguments!r}")
        return None
    try:
        return restricted_eval(value.arguments[0])
    except ExpressionError as e:
        problems.append(f"{where} {value.arguments[0]!r} rejected: {e}")
        return None


def load_yaml_with_eval(path: str | os.PathLike) -> Any:
    """The YAML file at ``path`` read safely, with every ``!!python/object/apply:eval`` value computed
    by :func:`restricted_eval`. A rejected expression raises ``ConfigError`` naming the file, the
    dotted key (``MODEL.ANCHOR_GENERATOR.SIZES``) and the reason."""
    path = Path(path)
    data = yaml.load(path.read_text(), Loader=_Loader)
    problems: list[str] = []
    data = _resolve(data, "", problems)
    if problems:
        raise ConfigError(problems, what=f"detectron2 config {path}")
    return data
