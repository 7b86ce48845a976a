import unittest

import calc


class PackageTest(unittest.TestCase):
    def test_imports(self):
        self.assertTrue(calc.__doc__)


if __name__ == "__main__":
    unittest.main()
