import sys

line = sys.stdin.readline().rstrip("\n")
print(" ".join(reversed(line.split())))
