# split(" ") keeps empty strings, so repeated spaces survive in the output.
line = input()
print(" ".join(line.split(" ")[::-1]).strip())
