"""flashdoctor: make FlashAttention work on this machine, and prove that it does.

Importing flashdoctor is light: it never imports torch (only flashdoctor.attention does).
"""

__version__ = "0.1.0"
