import sys

from sslseg.cli.main import main

sys.exit(main())
