"""Text that comes from a file (dataset names, notes, file names, error messages quoting them) is shown as text.

Streamlit renders Markdown (links, images, `:color[...]` directives, `$math$`) in st.markdown, st.caption,
st.error and widget labels. Everything a user's file provides goes through one of these two helpers first:

* escape_markdown(text): for Markdown contexts; every punctuation mark Markdown could act on is backslash-escaped,
  so the text renders literally (HTML is never enabled in this app, and `<` is escaped as well). GitHub-style
  autolinks (`http://…`, `www.…`, `name@host`) are found after escapes are resolved, so an invisible zero-width
  space is put after `://`, `www` and `@` to keep them plain text. A character UTF-8 cannot encode (a lone
  surrogate, which Streamlit could not send) is written as its escape (`encodable`).
* safe_name(name): for labels that appear both as Markdown and as plain text (the model selector's options):
  a file name cut to letters, digits, spaces, dots, dashes and underscores between two letters or digits
  (intraword underscores never start emphasis in CommonMark), which reads the same in both.
"""

from __future__ import annotations

import re

MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:&=^\"'%@")
MAX_SHOWN_CHARS = 500
ZERO_WIDTH_SPACE = "\u200b"
_AUTOLINK_STARTS = re.compile(r"(://|www|@)", re.IGNORECASE)


def encodable(text: str) -> str:
    """`text` with every character UTF-8 cannot encode (a lone surrogate such as "\\ud800", which a JSON escape can
    produce) written as its escape, so Streamlit can send it: checkpoints refuse such text (core.checkpoints), and
    this keeps any other source from turning a page into a UnicodeEncodeError."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def escape_markdown(text, limit: int = MAX_SHOWN_CHARS) -> str:
    """`text` (any value; str() of it) with Markdown disarmed, line breaks flattened and characters UTF-8 cannot
    encode written as escapes, cut to `limit` chars."""
    text = " ".join(encodable(str(text)).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    text = _AUTOLINK_STARTS.sub(lambda match: match.group(0) + ZERO_WIDTH_SPACE, text)
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in text)


def safe_name(name, limit: int = 60) -> str:
    """A file name reduced to letters, digits, spaces, dots, dashes and intraword underscores (anything else
    becomes '-'), at most `limit` characters."""
    name = str(name)[:limit]

    def keep(i: int, c: str) -> bool:
        if c == "_":
            return 0 < i < len(name) - 1 and name[i - 1].isalnum() and name[i + 1].isalnum()
        return c.isalnum() or c in " .-"

    cleaned = "".join(c if keep(i, c) else "-" for i, c in enumerate(name)).strip(" .-")
    return cleaned or "unnamed"
