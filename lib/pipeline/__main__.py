"""`python -m lib.pipeline ...`: the command line of lib.pipeline.make."""
from lib.pipeline.make import main

main()
