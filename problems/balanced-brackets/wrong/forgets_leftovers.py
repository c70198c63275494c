# Uses a stack but never checks that it is empty at the end.
t = int(input())
pairs = {")": "(", "]": "[", "}": "{"}
for _ in range(t):
    s = input().strip()
    stack = []
    ok = True
    for ch in s:
        if ch in "([{":
            stack.append(ch)
        elif not stack or stack.pop() != pairs[ch]:
            ok = False
            break
    print("YES" if ok else "NO")
