import sys

from agentclusters.cli import main

sys.exit(main())
