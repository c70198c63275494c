"""`python -m sdpo_ttt.cli` == `sdpo-ttt`."""

from sdpo_ttt.cli import main

main()
