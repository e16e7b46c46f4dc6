"""The report as a page to read: one numbering of sections and figures, a table of contents in reach, and no
noise (issue 30).

The notebooks write headings and captions without numbers; `page` numbers them across the reproduction and the
extension in reading order, gives every heading a stable anchor (its words, not its number), turns `§` links to a
heading into 'section N.M', and puts a table of contents beside the text. `quiet` drops what a step printed for its
log (stderr: progress bars, warnings) before the notebook becomes HTML; the executed notebooks keep it.
"""
from __future__ import annotations

import re

from bs4 import BeautifulSoup

from lib.analysis.markup import CAPTION, slug

SECTIONS = ("h2", "h3", "h4")  # numbered 1, 1.1, 1.1.1; the h1 is the title
IN_CONTENTS = ("h2", "h3")
OLD_NUMBER = re.compile(r"^\s*\d+(\.\d+)*\s*·\s*")  # a number written by hand, e.g. '1.2 · '
STYLE = """
<style>
nav#contents { position: fixed; top: 0; left: 0; width: 250px; height: 100vh; overflow-y: auto; padding: 16px 12px;
  box-sizing: border-box; border-right: 1px solid #ddd; background: #fafafa; font-size: 13px; line-height: 1.35; }
nav#contents ol { list-style: none; padding-left: 0; margin: 0; }
nav#contents ol ol { padding-left: 14px; }
nav#contents li { margin: 3px 0; }
nav#contents a { color: #234; text-decoration: none; }
nav#contents a:hover { text-decoration: underline; }
body { margin-left: 250px !important; }
@media (max-width: 900px) { nav#contents { position: static; width: auto; height: auto; border: 0; }
  body { margin-left: 0 !important; } }
.section-number { color: #667; margin-right: 0.4em; }
h1, h2, h3, h4 { scroll-margin-top: 40px; }  /* a contents link lands below the fixed code toggle */
p.figure-caption { margin: 4px 0 20px; color: #333; font-size: 0.95em; max-width: 60em; }
details { margin: 8px 0 12px; }
details > summary { cursor: pointer; color: #234; }
.answers { border: 1px solid #ccd; border-radius: 6px; padding: 10px 16px; background: #f7f9fc; max-width: 62em; }
.answers ul { margin: 6px 0; padding-left: 1.2em; }
.answers li { margin: 4px 0; }
.verdict { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: bold; }
table.claims td, table.claims th { text-align: left !important; vertical-align: top; }
table.dataframe .text-column { text-align: left !important; }
table.dataframe .label-column { white-space: nowrap; }  /* 'D-200d' stays one word */
</style>
"""


def quiet(notebook) -> None:
    """Drop every output a cell wrote to stderr (progress bars, warnings, logging), in place."""
    for cell in notebook.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


def heading_text(heading) -> str:
    """A heading's words, without nbconvert's '¶' link or a number written by hand."""
    for link in heading.select("a.anchor-link"):
        link.decompose()
    return OLD_NUMBER.sub("", heading.get_text(" ", strip=True)).strip()


def number_sections(soup) -> list[tuple[str, str, str, str]]:
    """Number the headings in reading order and anchor each by its words; returns (tag, number, anchor, text)."""
    counters = [0] * len(SECTIONS)
    sections, taken = [], set()
    for heading in soup.find_all(SECTIONS):
        level = SECTIONS.index(heading.name)
        counters[level] += 1
        counters[level + 1:] = [0] * (len(SECTIONS) - level - 1)
        number = ".".join(str(c) for c in counters[:level + 1])
        text = heading_text(heading)
        anchor = slug(text)
        while anchor in taken:  # two sections of the same words: the later one gets its number too
            anchor = f"{anchor}-{number.replace('.', '-')}"
        taken.add(anchor)
        heading.clear()
        heading["id"] = anchor
        label = soup.new_tag("span", attrs={"class": "section-number"})
        label.string = number
        heading.append(label)
        heading.append(text)
        sections.append((heading.name, number, anchor, text))
    return sections


def number_figures(soup) -> int:
    """Prefix every figure caption with 'Figure k.' in reading order; returns the count."""
    captions = soup.find_all("p", class_=CAPTION)
    for k, caption in enumerate(captions, start=1):
        label = soup.new_tag("b")
        label.string = f"Figure {k}. "
        caption.insert(0, label)
    return len(captions)


def link_sections(soup, sections: list[tuple[str, str, str, str]]) -> None:
    """A link to a heading whose text is '§' reads '§ N.M' (its number in this report)."""
    numbers = {anchor: number for _, number, anchor, _ in sections}
    for link in soup.find_all("a", href=True):
        anchor = link["href"][1:] if link["href"].startswith("#") else None
        if anchor in numbers and link.get_text(strip=True) == "§":
            link.string = f"§ {numbers[anchor]}"


NUMBER_LIKE = re.compile(r"^[\d\s.,+\-−–±%\[\]()e]*(pp)?$|^nan$")  # 99.30 ± 0.04 %, +1.2 [−0.5, +2.9], 1e-05, nan


def align_text_columns(soup) -> None:
    """Left-align the columns of words in pandas' tables (model names, losses; nbconvert right-aligns every cell), and
    keep one-word names on one line; numbers stay right-aligned, where their digits line up."""
    for table in soup.select("table.dataframe"):
        rows = [row.find_all(["th", "td"], recursive=False) for row in table.select("tbody > tr")]
        if not rows or len({len(r) for r in rows}) != 1:
            continue  # rows of unequal length (a spanning index): leave the table as pandas made it
        headers = [r for r in (row.find_all(["th", "td"], recursive=False) for row in table.select("thead > tr"))
                   if len(r) == len(rows[0])]
        for k in range(len(rows[0])):
            cells = [row[k] for row in rows]
            words = [c.get_text(strip=True) for c in cells if c.get_text(strip=True)]
            if all(c.name == "td" for c in cells) and words and not all(NUMBER_LIKE.match(w) for w in words):
                # names of one word (models: 'D-200d') never wrap; phrases (losses) do
                added = ["text-column"] + ([] if any(" " in w for w in words) else ["label-column"])
                for cell in cells + [header[k] for header in headers]:
                    cell["class"] = cell.get("class", []) + added


def contents(soup, sections: list[tuple[str, str, str, str]]):
    """The table of contents: the h2 sections with their h3 subsections, as a <nav>."""
    nav = soup.new_tag("nav", id="contents")
    title = soup.new_tag("b")
    title.string = "Contents"
    nav.append(title)
    top = soup.new_tag("ol")
    nav.append(top)
    current = None
    for tag, number, anchor, text in sections:
        if tag not in IN_CONTENTS:
            continue
        item = soup.new_tag("li")
        link = soup.new_tag("a", href=f"#{anchor}")
        link.string = f"{number} {text}"
        item.append(link)
        if tag == "h2" or current is None:
            top.append(item)
            current = item
        else:
            sub = current.find("ol")
            if sub is None:
                sub = soup.new_tag("ol")
                current.append(sub)
            sub.append(item)
    return nav


def page(html: str) -> str:
    """The exported report with numbered sections and figures, '§' links resolved and a table of contents."""
    soup = BeautifulSoup(html, "html.parser")
    sections = number_sections(soup)
    number_figures(soup)
    link_sections(soup, sections)
    align_text_columns(soup)
    soup.body.insert(0, contents(soup, sections))
    soup.head.append(BeautifulSoup(STYLE, "html.parser"))
    return str(soup)
