# Tries every number: hopeless when the next palindrome is far away (and int() refuses huge inputs).
n = int(input()) + 1
while str(n) != str(n)[::-1]:
    n += 1
print(n)
