# Reverses the characters instead of the words.
print(input().strip()[::-1])
