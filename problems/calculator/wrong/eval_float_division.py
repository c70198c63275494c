import sys

# True division with floats, truncated only at the end: wrong when a quotient is used further.
for line in sys.stdin.read().splitlines():
    if line.strip():
        print(int(eval(line)))
