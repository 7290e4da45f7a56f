"""``python3 -m engines BUNDLE --inputs inputs.npy --settings JSON`` on a device (see :mod:`.measure`)."""
import sys

from .measure import main

sys.exit(main())
