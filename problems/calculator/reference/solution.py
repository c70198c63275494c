import sys


def tokenize(s):
    tokens, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch.isspace():
            i += 1
        elif ch.isdigit():
            j = i
            while j < len(s) and s[j].isdigit():
                j += 1
            tokens.append(int(s[i:j]))
            i = j
        else:
            tokens.append(ch)
            i += 1
    return tokens


def evaluate(s):
    tokens = tokenize(s)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr():
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term():
        value = unary()
        while peek() in ("*", "/"):
            if take() == "*":
                value *= unary()
            else:
                d = unary()
                q = abs(value) // abs(d)
                value = q if (value >= 0) == (d > 0) else -q
        return value

    def unary():
        if peek() == "-":
            take()
            return -unary()
        if peek() == "+":
            take()
            return unary()
        return primary()

    def primary():
        tok = take()
        if tok == "(":
            value = expr()
            take()  # ")"
            return value
        return tok

    return expr()


for line in sys.stdin.read().splitlines():
    if line.strip():
        print(evaluate(line))
