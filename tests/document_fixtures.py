"""Real PDF files for the document tests, written with pypdf (the package the app reads them with).

Latin text uses the standard Helvetica font; Korean text a Type0 font (Identity-H) with a ToUnicode map, as
PDF makers write CJK text, so a PDF reader has to decode it the way it does for real Korean PDFs.
"""
from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject, \
    TextStringObject


def _n(name: str) -> NameObject:
    return NameObject(name)


def _stream(writer: PdfWriter, data: bytes):
    stream = DecodedStreamObject()
    stream.set_data(data)
    return writer._add_object(stream)


def _latin(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("cp1252")


def _korean_font(writer: PdfWriter, chars: set[str]):
    """A Type0 font whose codes are the characters' code points, with a ToUnicode map for those used."""
    entries = "\n".join(f"<{ord(c):04X}> <{ord(c):04X}>" for c in sorted(chars))
    cmap = ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            f"{len(chars)} beginbfchar\n{entries}\nendbfchar\nendcmap\n"
            "CMapName currentdict /CMap defineresource pop\nend\nend\n")
    descriptor = writer._add_object(DictionaryObject({
        _n("/Type"): _n("/FontDescriptor"), _n("/FontName"): _n("/TestKorean"), _n("/Flags"): NumberObject(4),
        _n("/FontBBox"): ArrayObject([NumberObject(0), NumberObject(-200), NumberObject(1000), NumberObject(900)]),
        _n("/ItalicAngle"): NumberObject(0), _n("/Ascent"): NumberObject(900), _n("/Descent"): NumberObject(-200),
        _n("/CapHeight"): NumberObject(700), _n("/StemV"): NumberObject(80)}))
    cid = writer._add_object(DictionaryObject({
        _n("/Type"): _n("/Font"), _n("/Subtype"): _n("/CIDFontType2"), _n("/BaseFont"): _n("/TestKorean"),
        _n("/CIDSystemInfo"): DictionaryObject({_n("/Registry"): TextStringObject("Adobe"),
                                                _n("/Ordering"): TextStringObject("Identity"),
                                                _n("/Supplement"): NumberObject(0)}),
        _n("/FontDescriptor"): descriptor, _n("/DW"): NumberObject(1000)}))
    return writer._add_object(DictionaryObject({
        _n("/Type"): _n("/Font"), _n("/Subtype"): _n("/Type0"), _n("/BaseFont"): _n("/TestKorean"),
        _n("/Encoding"): _n("/Identity-H"), _n("/DescendantFonts"): ArrayObject([cid]),
        _n("/ToUnicode"): _stream(writer, cmap.encode("ascii"))}))


def make_pdf(pages: list[list[str]], *, korean: bool = False, password: str | None = None) -> bytes:
    """A PDF with one page per list of lines (Latin, or Korean with `korean`); encrypted (RC4-128, as older
    PDF makers do) when a password is given."""
    writer = PdfWriter()
    if korean:
        font = _korean_font(writer, {c for lines in pages for line in lines for c in line})
    else:
        font = writer._add_object(DictionaryObject({
            _n("/Type"): _n("/Font"), _n("/Subtype"): _n("/Type1"), _n("/BaseFont"): _n("/Helvetica"),
            _n("/Encoding"): _n("/WinAnsiEncoding")}))
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[_n("/Resources")] = DictionaryObject({_n("/Font"): DictionaryObject({_n("/F1"): font})})
        shown = [(b"<" + "".join(f"{ord(c):04X}" for c in line).encode() + b">") if korean
                 else b"(" + _latin(line) + b")" for line in lines]
        body = b"BT /F1 10 Tf 40 760 Td 12 TL " + b" ".join(s + b" Tj T*" for s in shown) + b" ET"
        page[_n("/Contents")] = _stream(writer, body)
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def numbered_pages(count: int, lines: int = 40) -> list[list[str]]:
    """Pages whose lines say which page they are on ("Page 7, line 3: ..."), to see which pages were kept."""
    return [[f"Page {p}, line {i}: the river keeps its own account of every season." for i in range(1, lines + 1)]
            for p in range(1, count + 1)]
