# Forgets to convert to int: concatenates the two strings.
a, b = input().split()
print(a + b)
