s = input().strip()
n = len(s)
if set(s) == {"9"}:
    print("1" + "0" * (n - 1) + "1")
else:
    left = s[: (n + 1) // 2]
    candidate = left + left[: n // 2][::-1]
    if candidate >= s:  # returns the input itself when it already is a palindrome
        print(candidate)
    else:
        digits = list(left)
        i = len(digits) - 1
        while digits[i] == "9":
            digits[i] = "0"
            i -= 1
        digits[i] = str(int(digits[i]) + 1)
        left = "".join(digits)
        print(left + left[: n // 2][::-1])
