"""Arithmetic for the model, without ``eval``: a small walker over Python's AST.

Only numbers, + - * / // % **, parentheses and a few math functions are accepted;
anything else (names, attributes, calls of other functions, strings) is refused. Sizes
are bounded so that ``9**9**9`` or a 10,000-digit factorial cannot stall the loop.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_CHARS = 200
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e100

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max,
    "log": math.log, "log10": math.log10, "exp": math.exp, "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


class CalculatorError(ValueError):
    """Not an expression this calculator evaluates; ``str()`` says why."""


def evaluate(expression: str) -> float:
    text = expression.strip().replace("^", "**").replace("\u00d7", "*").replace("÷", "/")
    if not text or len(text) > MAX_CHARS:
        raise CalculatorError(f"give an arithmetic expression of 1 to {MAX_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from None
    value = _eval(tree.body)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise CalculatorError("the result is not a finite number")
    return value


def _eval(node: ast.expr) -> float:
    match node:
        case ast.Constant(value=bool()):
            raise CalculatorError("booleans are not numbers here")
        case ast.Constant(value=int() | float() as number):
            return _bounded(number)
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_eval(operand))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left), _eval(right)
            if isinstance(op, ast.Pow) and abs(b) > MAX_EXPONENT:
                raise CalculatorError(f"exponents are limited to ±{MAX_EXPONENT}")
            try:
                return _bounded(_BINARY[type(op)](a, b))
            except ZeroDivisionError:
                raise CalculatorError("division by zero") from None
            except OverflowError:
                raise CalculatorError("the result is too large") from None
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            try:
                return _bounded(_FUNCTIONS[name](*(_eval(a) for a in args)))
            except (TypeError, ValueError, OverflowError) as exc:
                raise CalculatorError(f"{name}(): {exc}") from None
    raise CalculatorError(f"not allowed in an expression: {ast.unparse(node)!r}")


def _bounded(value: float) -> float:
    if isinstance(value, complex):
        raise CalculatorError("the result is not a real number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("the result is too large")
    return value


def format_number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.10g}"
