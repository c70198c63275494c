import sys


def count(a):
    n = len(a)
    if n <= 1:
        return a, 0
    left, x = count(a[: n // 2])
    right, y = count(a[n // 2 :])
    merged, inv, i, j = [], x + y, 0, 0
    while i < len(left) and j < len(right):
        if left[i] < right[j]:  # equal values are counted as inversions
            merged.append(left[i])
            i += 1
        else:
            merged.append(right[j])
            inv += len(left) - i
            j += 1
    merged.extend(left[i:])
    merged.extend(right[j:])
    return merged, inv


data = sys.stdin.read().split()
n = int(data[0])
print(count(list(map(int, data[1 : 1 + n])))[1])
