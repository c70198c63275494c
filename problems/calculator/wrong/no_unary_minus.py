import re
import sys


def evaluate(s):
    tokens = re.findall(r"\d+|[-+*/()]", s)
    pos = 0

    def expr():
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            value = value + term() if op == "+" else value - term()
        return value

    def term():
        nonlocal pos
        value = atom()
        while pos < len(tokens) and tokens[pos] in "*/":
            op = tokens[pos]
            pos += 1
            rhs = atom()
            value = value * rhs if op == "*" else int(value / rhs)
        return value

    def atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = expr()
            pos += 1
            return value
        return int(tok)  # a leading '-' is not handled

    return expr()


for line in sys.stdin.read().splitlines():
    if line.strip():
        print(evaluate(line))
