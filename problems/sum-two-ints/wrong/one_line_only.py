# Assumes both numbers are on the first line; fails when they are on separate lines.
a, b = map(int, input().split())
print(a + b)
