"""Checkpoint + images -> digits with probabilities. Used by `digitos predict` and the web app."""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_checkpoint, load_state_dict_file
from .errors import DigitosError
from .evaluate import NOT_A_DIGIT, model_logits, read_classes
from .ink import (
    INK_LEVEL,
    SHADED,
    Group,
    Ink,
    between,
    box_in_input,
    cut_paths,
    find_groups,
    find_ink,
    group_ink,
    join,
    text_lines,
)
from .linereader import surety
from .loader import inference_layout, to_input, uses_channels_last
from .preprocess import (
    FORMAT_NAMES,
    IMAGE_SUFFIXES,
    ImageError,
    Preprocessed,
    digit_to_mnist,
    open_image,
    preprocess_file,
    save_pixels,
)

SHIPPED_CHECKPOINT = Path(__file__).parent / "weights" / "digitnet.pt"
SHIPPED_LINES = Path(__file__).parent / "weights" / "linenet.pt"  # the line reader
UNSURE_BELOW = 0.7  # a reading under this probability is reported as unsure
SURE_WITHOUT_TTA = 0.99  # a plain pass this sure skips test-time augmentation


@dataclass
class Reading:
    digit: str  # the class read: "0".."9", or "not a digit" for a model that has that class
    confidence: float
    probabilities: list[float]  # one per class of the model, in `classes` order
    unsure: bool
    classes: list[str]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities, most probable first."""
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])
        return [(self.classes[i], self.probabilities[i]) for i in order[:k]]

    @property
    def not_a_digit(self) -> bool:
        return self.digit == NOT_A_DIGIT

    @property
    def not_a_digit_probability(self) -> float:
        return self.probabilities[self.classes.index(NOT_A_DIGIT)] if NOT_A_DIGIT in self.classes \
            else 0.0

    def digit_probabilities(self) -> list[float]:
        """The probability of each digit 0-9 (with a not-a-digit class, they sum to less than 1)."""
        return [self.probabilities[i] for i, c in enumerate(self.classes) if c != NOT_A_DIGIT]


class Reader:
    """A trained model ready to read 28x28 MNIST-form digits."""

    def __init__(self, model: nn.Module, meta: dict, unsure_below: float = UNSURE_BELOW,
                 lines: tuple[nn.Module, dict] | None = None):
        self.model = inference_layout(model, meta["model"]).eval()
        # The line reader (a LineNet and its checkpoint's dict), which reads numbers whole.
        self.line_model, self.line_meta = lines if lines is not None else (None, None)
        self.channels_last = uses_channels_last(self.model)  # inputs in the model's layout
        self.meta = meta
        self.normalization = tuple(meta["normalization"])
        self.classes = list(meta.get("classes") or [str(i) for i in range(10)])
        self.tta = bool(meta.get("tta", False))
        self.unsure_below = unsure_below
        self.digit_columns = [i for i, c in enumerate(self.classes) if c != NOT_A_DIGIT]

    @torch.inference_mode()
    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) -> probabilities (N, classes).

        With test-time augmentation, an image the plain pass reads at SURE_WITHOUT_TTA or
        more keeps that reading: the four shifted views changed none of them on MNIST's test
        set, and they cost four more passes (most of a canvas's reading time).
        """
        x = to_input(pixels, self.normalization, self.channels_last)
        p = F.softmax(self.model(x), dim=1)
        if self.tta:
            doubt = p.max(1).values < SURE_WITHOUT_TTA
            if doubt.any():
                views = x[doubt]
                if self.channels_last:
                    views = views.contiguous(memory_format=torch.channels_last)
                p[doubt] = F.softmax(model_logits(self.model, views, True), dim=1)
        return p

    def read(self, pixels: torch.Tensor) -> Reading:
        """One uint8 (28, 28) image -> its Reading."""
        return self.read_many(pixels[None])[0]

    def read_many(self, pixels: torch.Tensor) -> list[Reading]:
        """uint8 (N, 28, 28) images -> a Reading each, in one pass of the model."""
        out = []
        probabilities = self.probabilities(pixels)
        for p, best in zip(probabilities, read_classes(probabilities, self.classes).tolist(),
                           strict=True):
            conf = float(p[best])
            out.append(Reading(self.classes[best], conf, [round(float(v), 6) for v in p],
                               conf < self.unsure_below, self.classes))
        return out

    def saliency(self, pixels: torch.Tensor, target: int | None = None) -> torch.Tensor:
        """Plain autograd saliency: |d score / d pixel| of the read class, scaled to [0, 1]."""
        x = to_input(pixels[None], self.normalization, self.channels_last).requires_grad_(True)
        with torch.enable_grad():
            scores = self.model(x)
            cls = int(scores.argmax()) if target is None else target
            scores[0, cls].backward()
        g = x.grad[0, 0].abs()
        return g / g.max().clamp(min=1e-12)


def load_reader(checkpoint: str | Path | None = None,
                unsure_below: float = UNSURE_BELOW, model: str | None = None,
                weights: str | Path | None = None, tta: bool | None = None,
                lines: str | Path | bool = True) -> Reader:
    """A Reader from a checkpoint, a bare state_dict (`model` and `weights`), or the model
    shipped with digitos. `tta` overrides the checkpoint's test-time augmentation. `lines`:
    the line reader's checkpoint, True for the shipped one (when there is one), False for
    none (numbers are then cut into digits and read digit by digit)."""
    line_reader = None
    if lines is not False:
        path = SHIPPED_LINES if lines is True else Path(lines)
        if lines is not True or path.is_file():
            net, meta = load_checkpoint(path)
            if meta["model"] != "LineNet":
                raise DigitosError(f"{path}: a {meta['model']}, not a line reader (LineNet)")
            line_reader = (net, meta)
    if weights is not None or model is not None:
        if weights is None or model is None:
            raise DigitosError("--weights FILE needs --model NAME, and --model needs --weights")
        if checkpoint is not None:
            raise DigitosError("give either --checkpoint or --model with --weights, not both")
        net, meta = load_state_dict_file(weights, model)
    else:
        path = Path(checkpoint) if checkpoint else SHIPPED_CHECKPOINT
        if checkpoint is None and not path.is_file():
            raise DigitosError(f"the shipped model is missing ({path}); pass --checkpoint")
        net, meta = load_checkpoint(path)
    if tta is not None:
        meta = meta | {"tta": tta}
    return Reader(net, meta, unsure_below, line_reader)


def predict_file(reader: Reader, source: str | Path | bytes,
                 name: str | None = None) -> tuple[Reading, Preprocessed]:
    """All the writing in an image read as one digit (no splitting into a number)."""
    pre = preprocess_file(source, name)
    return reader.read(pre.pixels), pre


SPLIT_WIDER_THAN = 0.7  # writing wider than this times its height may be touching digits
SPLIT_NOT_A_DIGIT = 0.4  # ...or than this, when it reads as no digit beside digits
NARROWEST = 0.12  # a digit cut from touching ones is at least this times the height wide
EXTRA_DIGIT = 0.5  # prior odds of one more digit: a cut must more than double the surety
NUMBER_SURE = 0.7  # a number's digits read, on average, at least this surely
CUT_SURE = 0.9  # or this surely, when they were all cut from one piece that reads as no digit
SAME_HEIGHT = 0.5  # and the shortest is at least this share of the tallest
IN_NUMBER_NOT_A_DIGIT = 0.97  # beside digits, a piece is "not a digit" only this surely
LINE_SURE = 0.8  # the line reader's digits read this surely, on average, are taken as read
WHOLE_SURE = 0.96  # ...and this surely, its reading outweighs pieces the classifier doubted
PIECE_SURE = 0.9  # a piece read less surely than this may hold a digit more
FAR_APART = 0.25  # a piece this share of its height from any other stands apart


@dataclass
class DigitReading:
    """One digit of an image: what it reads as, where it is, and what the model saw."""

    reading: Reading
    box: list[int]  # [left, top, right, bottom] in the input's pixels
    pixels: torch.Tensor  # the 28x28 the model saw
    group: Group
    peak: float | None = None  # the line reader's digits: the working column it was surest at

    @property
    def not_a_digit(self) -> bool:
        return self.reading.not_a_digit


@dataclass
class LineReading:
    """One line of digits in an image: a number."""

    number: str
    digits: list[DigitReading]
    box: list[int]  # [left, top, right, bottom] in the input's pixels


def line_box(ink: Ink, line: ImageReading) -> LineReading:
    """A line's digits as a LineReading, boxed."""
    boxes = [d.group.box for d in line.digits]
    box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
           max(b[3] for b in boxes))
    return LineReading(line.number, line.digits, box_in_input(ink, box))


@dataclass
class ImageReading:
    """Everything written in one image, left to right."""

    number: str  # the digits read, as a string ("2026"); "" when the image holds no digit
    digits: list[DigitReading]  # the digits, left to right (pieces that are not digits left out)
    pieces: list[DigitReading]  # every piece of writing, digits or not, left to right
    not_a_digit: bool  # the image holds no digit: a letter, a doodle, an object, text
    whole: DigitReading  # all the writing read as one: what a not-a-digit answer rests on
    polarity: str
    size: tuple[int, int]
    picture: bool = False  # not a digit because it is a picture: shaded areas, not pen strokes
    marks_inside: bool = False  # not a digit because a loop holds marks: a face, a drawn thing
    lines: list[LineReading] = field(default_factory=list)  # the lines of digits, top to bottom

    @property
    def by_rule(self) -> bool:
        """Not a digit by a rule about the drawing (`picture`, `marks_inside`), whatever the
        model read: that answer is sure, not the model's not-a-digit probability."""
        return self.picture or self.marks_inside


def read_image(reader: Reader, source: str | Path | bytes, name: str | None = None) -> ImageReading:
    """Read every digit in an image: each line of writing top to bottom, left to right."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    ink = find_ink(open_image(source, label), label)
    groups = find_groups(ink, label)
    rows = text_lines(groups)
    lines = [_read_line(reader, ink, row) for row in rows]
    if len(lines) == 1:
        result = lines[0]
    else:
        # All the writing read as one: what a not-a-digit answer for the image rests on.
        everything = _read_groups(reader, ink, [join(groups)])[0]
        read = [line for line in lines if not line.not_a_digit]
        result = ImageReading(" ".join(line.number for line in read),
                              [d for line in read for d in line.digits],
                              [p for line in lines for p in line.pieces], not read, everything,
                              ink.polarity, ink.size, lines=[line.lines[0] for line in read])
    # Wide grey areas around the "strokes": a picture of a thing, not writing.
    picture = ink.shading > SHADED
    # Marks inside a loop (a face's eyes): a drawing of a thing too, though of strokes.
    marks_inside = any(g.holds_marks for g in groups)
    if picture or marks_inside:
        result = replace(result, number="", digits=[], lines=[], not_a_digit=True,
                         picture=picture, marks_inside=marks_inside)
    return result


def _read_line(reader: Reader, ink: Ink, groups: list[Group]) -> ImageReading:
    """One line of writing read: its digits, or "not a digit". A line of several pieces of ink
    is read whole by the line reader first, and its reading taken when it is sure of it and
    the classifier agrees on each digit (`_taken`). Otherwise the pieces are read one by one
    by the digit classifier; a piece that may hold touching digits is read whole by the line
    reader or cut (`_segment`); then the pieces are judged as a number (`_judge`). The line
    reader's whole reading still stands where it reads very surely what the classifier
    doubted (`_line_decides`), or digits where the pieces made none."""
    several = len(groups) > 1
    line_read = _has_line_reader(reader) and (several or _wide(groups[0]))
    # Several pieces are read whole first; one piece is the classifier's first
    # (`_segment`: a wide 4 it reads surely is not the line reader's "21").
    # All the writing read as one: one group is already that; several are read joined.
    pieces = [*groups, join(groups)] if several else list(groups)
    pixels = [digit_to_mnist(group_ink(ink, g)) for g in pieces]
    known = list(zip(groups, pixels[: len(groups)], strict=True))
    whole = _line_digits(reader, ink, pieces[-1], known) if line_read and several else []
    # One pass of the classifier for the pieces, all the writing and the line reader's digits
    # (`_taken`'s check); a digit that is one of the pieces (digits apart) is read once.
    new = [d for d in whole if not any(d.group is g for g in groups)]
    read, seen_new = _read_groups_and(reader, ink, pieces, [d.pixels for d in new], pixels)
    first, everything = read[: len(groups)], read[-1]
    of_piece = {id(p.group): p.reading for p in first}
    rest = iter(seen_new)
    seen = [of_piece[id(d.group)] if id(d.group) in of_piece else next(rest) for d in whole]
    if whole and _taken(reader, whole, alone=False, seen=seen) and _covers(whole, first):
        line = ImageReading("".join(d.reading.digit for d in whole), whole, whole, False,
                            everything, ink.polarity, ink.size)
        line.lines = [line_box(ink, line)]
        return line
    # Among other digits, a piece that reads as no digit is most likely digits pushed together.
    in_number = len(first) > 1 and any(not p.not_a_digit for p in first)
    # One piece: the line reader reads it, as the whole line, only if the classifier doubts
    # it (most single digits it reads surely: a quarter of a canvas's reading saved), and once.
    read_whole = None
    if len(groups) == 1 and _has_line_reader(reader):
        read_whole = functools.cache(
            lambda: _line_digits(reader, ink, join(groups)) if line_read else [])
    cut = [_segment(reader, ink, p, in_number, read_whole) for p in first]
    lone_stroke = len(groups) == 1 and first[0].not_a_digit
    pieces, digits, not_digit = _judge([d for c in cut for d in c], everything, lone_stroke)
    if not_digit and len(first) > 1:
        # Cutting is decided piece by piece; whether the pieces make a number, only for all of
        # them. A cut that made the number fail (a sliver cut off a 0 or a 1 is far shorter
        # than the digits beside it) is undone: each one alone, then all of them.
        for undone in _uncut(first, cut):
            judged = _judge(undone, everything, lone_stroke)
            if not judged[2]:
                pieces, digits, not_digit = judged
                break
    if not not_digit and _line_decides(whole, digits, first):
        pieces, digits = whole, whole
    if not_digit and read_whole is not None:
        whole = read_whole()
    if not_digit and len(whole) > 1 and _surety(whole) >= LINE_SURE:
        # Judged piece by piece, not a number; read whole, surely digits: the line reader,
        # which learned whole lines (and to read letters and doodles as nothing), decides.
        pieces, digits, not_digit = whole, whole, False
    number = "".join(d.reading.digit for d in digits)
    line = ImageReading(number, digits, pieces, not_digit, everything, ink.polarity, ink.size)
    if not not_digit:
        line.lines = [line_box(ink, line)]
    return line


def _taken(reader: Reader, parts: list[DigitReading], alone: bool,
           seen: list[Reading] | None = None) -> bool:
    """Whether the line reader's reading of some writing is taken as it reads: two digits or
    more, read surely (LINE_SURE on average), and the classifier, shown each digit's ink,
    finds the same digit likeliest (a long stroke of one digit, a 2's base under a 3, read as
    one digit more is not taken). One piece of ink read only as 1s (an n, an H, a comb) is not.
    `seen`: the classifier's readings of the parts, when it has read them already."""
    if len(parts) < 2 or _surety(parts) < LINE_SURE:
        return False
    if alone and all(p.reading.digit == "1" for p in parts):
        return False
    # The classifier's likeliest *digit*: a digit's ink cut from touching ones holds bits of
    # its neighbours, which the classifier, asked, calls "not a digit".
    if seen is None:
        seen = reader.read_many(torch.stack([p.pixels for p in parts]))
    return all(str(int(np.argmax(r.digit_probabilities()))) == p.reading.digit
               for r, p in zip(seen, parts, strict=True))


def _covers(whole: list[DigitReading], pieces: list[DigitReading]) -> bool:
    """Whether the line reader saw a digit in every piece of ink that stands apart (FAR_APART
    of its height or more from any other) and that the classifier reads as a digit. A digit
    written far from the others (a 1 or a 0 a digit's width away) can fall out of the line
    reader's reading, its ink taken into its neighbour's span; the classifier, reading each
    piece, does not lose it. (A sliver beside a stroke, part of one digit, stands close.)"""
    def apart(p: DigitReading) -> bool:
        left, top, right, bottom = p.group.box
        return all(max(q.group.box[0] - right, left - q.group.box[2]) >= FAR_APART * (bottom - top)
                   for q in pieces if q is not p)

    return all(any(p.group.box[0] <= d.peak < p.group.box[2] for d in whole if d.peak is not None)
               for p in pieces if not p.not_a_digit and apart(p))


def _line_decides(whole: list[DigitReading], digits: list[DigitReading],
                  first: list[DigitReading]) -> bool:
    """Whether the line reader's reading of a whole line (`whole`) stands over the number the
    classifier's path read piece by piece (`digits`; `first`: the pieces as it first read
    them). It must read the line WHOLE_SURE surely, and the classifier must have doubted a
    piece: more digits, where a piece it called no digit was dropped or one it read unsurely
    held two touching digits; as many, where a piece it called no digit was cut apart along
    paths, which only guess where one digit ends and the next begins."""
    if len(whole) < len(digits) or not whole or _surety(whole) < WHOLE_SURE:
        return False
    if len(whole) > len(digits):
        return any(p.not_a_digit or p.reading.confidence < PIECE_SURE for p in first)
    return any(p.not_a_digit for p in first)


def _has_line_reader(reader: Reader) -> bool:
    return getattr(reader, "line_model", None) is not None  # stand-ins in tests have none


def _wide(group: Group) -> bool:
    """Wide enough for touching digits."""
    left, top, right, bottom = group.box
    return right - left > SPLIT_WIDER_THAN * (bottom - top)


def _line_digits(reader: Reader, ink: Ink, line: Group,
                 known: list[tuple[Group, torch.Tensor]] | None = None) -> list[DigitReading]:
    """A line's digits as the line reader reads them, each with its ink and box. A digit whose
    ink is exactly one of the `known` groups (a digit standing apart) is given that group and
    its 28x28, already made."""
    from .linereader import read_lines
    from .preprocess import LINE_MARGIN, line_to_input

    crop = group_ink(ink, line)
    x = line_to_input(crop)
    cols = np.nonzero((crop >= INK_LEVEL).any(0))[0]
    # Columns of the line's input -> columns of the working image.
    x0 = max(line.box[0] - 1, 0) + int(cols[0])
    per_column = (int(cols[-1]) - int(cols[0]) + 1) / (x.shape[1] - 2 * LINE_MARGIN)
    out = []
    for d in read_lines(reader.line_model, [x], tuple(reader.line_meta["normalization"]))[0]:
        a, b = (x0 + (c - LINE_MARGIN) * per_column for c in d.columns)
        part = between(line, int(math.floor(a)), int(math.ceil(b)))
        if part is None:
            continue
        part, pixels = _known(part, known or []) or (part, None)
        if pixels is None:
            pixels = digit_to_mnist(group_ink(ink, part))
        probabilities = [d.probabilities[int(c)] if c != NOT_A_DIGIT else 0.0
                         for c in reader.classes]
        reading = Reading(str(d.digit), d.confidence, probabilities,
                          d.confidence < reader.unsure_below, reader.classes)
        out.append(DigitReading(reading, box_in_input(ink, part.box), pixels, part,
                                x0 + (d.peak - LINE_MARGIN) * per_column))
    return out


def _known(part: Group, known: list[tuple[Group, torch.Tensor]]
           ) -> tuple[Group, torch.Tensor] | None:
    """The known group (and its 28x28) that holds exactly the ink of `part`, if one does."""
    left, top, right, bottom = part.box
    for group, pixels in known:
        if group.box == part.box and np.array_equal(group.mask[top:bottom, left:right],
                                                    part.mask[top:bottom, left:right]):
            return group, pixels
    return None


def _judge(pieces: list[DigitReading], everything: DigitReading,
           lone_stroke: bool) -> tuple[list[DigitReading], list[DigitReading], bool]:
    """The pieces of writing as read beside each other, the digits among them, and whether
    the image is not a digit (by the model's word alone: pictures and faces come after)."""
    if len(pieces) == 1:
        not_digit = everything.not_a_digit
        return pieces, [] if not_digit else [everything], not_digit
    if any(not p.not_a_digit for p in pieces):
        pieces = [_read_beside_digits(p) for p in pieces]
    digits = [p for p in pieces if not p.not_a_digit]
    # Most of the writing is not digits, or its pieces read as digits only unsurely (a
    # word, a doodle, a letter cut into digit-like pieces): not a number.
    # All the writing one piece that the model is sure is no digit (a letter, a doodle,
    # or digits pushed together): cut, its pieces must read surely to outweigh that.
    sure = CUT_SURE if lone_stroke else NUMBER_SURE
    not_digit = (len(digits) * 2 <= len(pieces) or _surety(digits) < sure
                 or not _alike(digits))
    return pieces, [] if not_digit else digits, not_digit


def _uncut(first: list[DigitReading], cut: list[list[DigitReading]]) -> list[list[DigitReading]]:
    """The pieces with one of the cuts undone, for each cut piece, then with all undone."""
    were_cut = [i for i, c in enumerate(cut) if len(c) > 1]
    one = [[d for k, c in enumerate(cut) for d in ([first[k]] if k == i else c)]
           for i in were_cut]
    return one + [list(first)] if len(were_cut) > 1 else one


def _read_beside_digits(piece: DigitReading) -> DigitReading:
    """A piece read beside digits: "not a digit" only when the model is very sure of it.

    Among other digits, a piece is far more likely a digit than it is alone (prior odds of
    "not a digit" about ten times lower), so it needs IN_NUMBER_NOT_A_DIGIT instead of 75%;
    otherwise it is its likeliest digit, with that digit's share of the digits' probability
    as its confidence, and marked unsure: the model did doubt it was a digit. An odd 2 or 5
    in a number is then read, not silently dropped.
    """
    r = piece.reading
    if not _doubted(r):
        return piece
    digit_probabilities = r.digit_probabilities()
    best = max(range(len(digit_probabilities)), key=digit_probabilities.__getitem__)
    confidence = digit_probabilities[best] / max(sum(digit_probabilities), 1e-9)
    return replace(piece, reading=Reading(str(best), confidence, r.probabilities, True,
                                          r.classes))


def _doubted(r: Reading) -> bool:
    """Read as "not a digit", but not surely enough to stay one beside other digits."""
    return r.not_a_digit and r.not_a_digit_probability < IN_NUMBER_NOT_A_DIGIT


def _surety(digits: list[DigitReading]) -> float:
    """How surely the digits read, as a whole (`linereader.surety`)."""
    return surety([d.reading.confidence for d in digits])


def _alike(digits: list[DigitReading]) -> bool:
    """Whether pieces are about as tall as each other, as the digits of one number are: the
    shortest at least SAME_HEIGHT of the tallest."""
    heights = [d.group.box[3] - d.group.box[1] for d in digits]
    return min(heights) >= SAME_HEIGHT * max(heights)


def _read_groups(reader: Reader, ink: Ink, groups: list[Group]) -> list[DigitReading]:
    return _read_groups_and(reader, ink, groups, [])[0]


def _read_groups_and(reader: Reader, ink: Ink, groups: list[Group], more: list[torch.Tensor],
                     pixels: list[torch.Tensor] | None = None
                     ) -> tuple[list[DigitReading], list[Reading]]:
    """The groups read as digits, and `more` 28x28s read in the same pass of the model.
    `pixels`: the groups' 28x28s, when they are made already."""
    if not groups and not more:
        return [], []
    if pixels is None:
        pixels = [digit_to_mnist(group_ink(ink, g)) for g in groups]
    readings = reader.read_many(torch.stack(pixels + more))
    read = [DigitReading(r, box_in_input(ink, g.box), p, g)
            for r, p, g in zip(readings[: len(groups)], pixels, groups, strict=True)]
    return read, readings[len(groups):]


def _segment(reader: Reader, ink: Ink, piece: DigitReading, in_number: bool = False,
             read_whole: Callable[[], list[DigitReading]] | None = None) -> list[DigitReading]:
    """Touching digits cut apart: the cuts whose pieces read most surely, or no cut at all.

    Cuts are paths that wind between the digits through the least ink (`ink.cut_paths`).
    Every run of ink between two cuts is read (all in one pass of the model), and the split
    chosen is the one that maximises the product of its pieces' probabilities, so a cut must
    make both pieces read more surely than the whole did. Reading "not a digit" counts as a
    probability of 1%; beside other digits, unless the model is sure of it, as the piece's
    likeliest digit (what `_read_beside_digits` then reads it as).
    """
    left, top, right, bottom = piece.group.box
    height = bottom - top
    narrowest = SPLIT_NOT_A_DIGIT if piece.not_a_digit and in_number else SPLIT_WIDER_THAN
    if right - left <= narrowest * height:
        return [piece]
    if not piece.not_a_digit and piece.reading.confidence >= EXTRA_DIGIT:
        # No split can win: two pieces score at most EXTRA_DIGIT (both read at 100%) against
        # the whole's own confidence. Saves reading the candidate pieces.
        return [piece]
    if _has_line_reader(reader):
        # The line reader reads the piece whole: where one digit ends and the next begins is
        # what it learned. Read surely, that is the answer; else the cut paths are tried.
        parts = read_whole() if read_whole is not None else _line_digits(reader, ink, piece.group)
        if _taken(reader, parts, alone=not in_number):
            return parts
    # About two candidate cuts per digit the width could hold, ten at most.
    most = min(10, 1 + math.ceil(2 * (right - left) / height))
    # Beside other digits, every valley is a cut to try (digits pushed together); alone,
    # only the cleanest: a letter or a doodle has many valleys, each a digit-like piece.
    edges = [left, *cut_paths(piece.group, most, valleys=in_number), right]
    spans, groups = [], []
    for i in range(len(edges)):
        for j in range(i + 1, len(edges)):
            if (i, j) == (0, len(edges) - 1):
                continue  # the whole piece, read already
            part = between(piece.group, edges[i], edges[j])
            if part is not None and part.box[2] - part.box[0] >= NARROWEST * height:
                spans.append((i, j))
                groups.append(part)
    read = dict(zip(spans, _read_groups(reader, ink, groups), strict=True))
    read[(0, len(edges) - 1)] = piece

    def log_p(d: DigitReading) -> float:
        """How likely this run of columns is one digit: the model's word for it, times the
        prior odds of one more digit. (A prior against wide digits was weighed and left out:
        it cut more single wide 0s and 2s than it saved numbers.)"""
        r = d.reading
        if not r.not_a_digit:
            p = r.confidence
        elif in_number and _doubted(r):
            p = max(r.digit_probabilities())  # what _read_beside_digits will read it as
        else:
            p = 0.01
        return math.log(max(p, 1e-6)) + math.log(EXTRA_DIGIT)

    # best[j]: the most probable way to read columns edges[0]..edges[j] as digits.
    best: list[tuple[float, list[DigitReading]]] = [(0.0, [])]
    for j in range(1, len(edges)):
        options = [(best[i][0] + log_p(read[(i, j)]), [*best[i][1], read[(i, j)]])
                   for i in range(j) if (i, j) in read and best[i][0] > -math.inf]
        best.append(max(options, key=lambda o: o[0]) if options else (-math.inf, []))
    parts = best[-1][1] or [piece]
    if len(parts) > 1 and not in_number and all(p.reading.digit == "1" for p in parts):
        return [piece]  # one stroke cut into bars only: an n, H, M, U or W, a comb, not 1s
    return parts


def not_a_digit_confidence(result: ImageReading) -> float:
    """How surely the image holds no digit."""
    if result.by_rule:
        return 1.0  # not the model's word: a rule about the drawing decided
    if result.whole.not_a_digit or len(result.pieces) <= 1:
        return result.whole.reading.not_a_digit_probability
    return sum(p.reading.not_a_digit_probability for p in result.pieces) / len(result.pieces)


def digit_json(d: DigitReading) -> dict:
    r = d.reading
    return {"digit": int(r.digit), "confidence": round(r.confidence, 6), "unsure": r.unsure,
            "box": d.box, "probabilities": r.digit_probabilities(),
            "not_a_digit_probability": round(r.not_a_digit_probability, 6)}


def reading_json(path: str, result: ImageReading) -> dict:
    """The fields `predict --json` and the web API answer with, in one order for every image.

    A one-digit image has its `digit`, `confidence`, `unsure` and `probabilities` at the top;
    a number of several digits has `digit` null and its digits in `digits` (and, line by
    line, in `lines`); an image with no digit has `not_a_digit` true. `not_a_digit_probability`
    is the image's as a whole: how surely it holds no digit (for a number, the mean of its
    digits' not-a-digit probabilities).
    """
    digits = [digit_json(d) for d in result.digits]
    if len(digits) == 1:
        top = {k: digits[0][k] for k in ("digit", "confidence", "unsure", "probabilities")}
        top["class"] = result.digits[0].reading.digit
    elif result.not_a_digit:
        top = {"digit": None, "class": NOT_A_DIGIT,
               "confidence": round(not_a_digit_confidence(result), 6), "unsure": False,
               "probabilities": result.whole.reading.digit_probabilities()}
    else:
        top = {"digit": None, "class": None, "confidence": min(d["confidence"] for d in digits),
               "unsure": any(d["unsure"] for d in digits), "probabilities": None}
    if result.not_a_digit:
        nothing = not_a_digit_confidence(result)
    else:
        nothing = sum(d.reading.not_a_digit_probability for d in result.digits) / len(digits)
    return {"path": path, "number": result.number, "digit": top["digit"], "class": top["class"],
            "confidence": top["confidence"], "unsure": top["unsure"],
            "probabilities": top["probabilities"], "not_a_digit": result.not_a_digit,
            "not_a_digit_probability": round(nothing, 6), "digits": digits,
            "lines": [{"number": line.number, "box": line.box,
                       "digits": [digit_json(d) for d in line.digits]} for line in result.lines],
            "picture": result.picture,  # not a digit because the image is a picture of a thing
            "marks_inside": result.marks_inside}  # ...or because a loop holds marks (a face)


def reading_text(path: str, result: ImageReading) -> str:
    """The plain line `predict` prints: the number, then each digit with its confidence."""
    if result.picture:
        return f"{path}: not a digit (a picture)"
    if result.marks_inside:
        return f"{path}: not a digit (marks inside a loop)"
    if result.not_a_digit:
        return f"{path}: not a digit ({100 * not_a_digit_confidence(result):.1f}%)"
    if len(result.digits) == 1:
        r = result.digits[0].reading
        others = ", ".join(f"{d} {100 * p:.1f}%" for d, p in r.top(3)[1:])
        mark = "  (unsure)" if r.unsure else ""
        return f"{path}: {r.digit} ({100 * r.confidence:.1f}%){mark}   next: {others}"
    if len(result.lines) > 1:  # one line of output per line of writing
        return "\n".join(f"{path} (line {i}): {line.number}   digits: {_each(line.digits)}"
                         for i, line in enumerate(result.lines, 1))
    return f"{path}: {result.number}   digits: {_each(result.digits)}"


def _each(digits: list[DigitReading]) -> str:
    return ", ".join(f"{d.reading.digit} ({100 * d.reading.confidence:.1f}%"
                     f"{', unsure' if d.reading.unsure else ''})" for d in digits)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; folders give their image files, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*")
                          if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def _unique_stem(path: Path, used: set[str]) -> str:
    """The file's name without suffix, or, when another file had it, its parent folders'
    names joined in front (b_x), then a count (x.2)."""
    stem = path.stem
    parts = list(path.parent.parts)
    while stem in used and parts:
        stem = f"{parts.pop()}_{stem}".lstrip("/_")
    base, n = stem, 1
    while stem in used:
        n += 1
        stem = f"{base}.{n}"
    used.add(stem)
    return stem


def run_predict(args) -> int:
    """`digitos predict`: read every file; refused ones get a line each; exit 1 if any."""
    unsure = UNSURE_BELOW if args.unsure_below is None else args.unsure_below
    lines = False if args.no_line_reader else (args.lines_checkpoint or True)
    reader = load_reader(args.checkpoint, unsure, args.model, args.weights, args.tta, lines)
    files = expand_paths(args.paths)
    if not files and not args.json:
        raise DigitosError("no image files found in " + ", ".join(args.paths))
    failed = 0
    for folder in args.paths:  # a folder given that holds no image is said, not skipped
        if Path(folder).is_dir() and not expand_paths([folder]):
            failed += 1
            message = f"{folder}: a folder with no image files ({FORMAT_NAMES})"
            if args.json:
                print(json.dumps({"path": folder, "error": message}), flush=True)
            print(f"digitos: error: {message}", file=sys.stderr, flush=True)
    save_dir = Path(args.save_preprocessed) if args.save_preprocessed else None
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for f in files:
        try:
            result = read_image(reader, f)
        except Exception as e:
            # One file's failure, expected or not, is that file's line: the others are read.
            message = str(e) if isinstance(e, ImageError) else \
                f"{f}: unexpected failure ({type(e).__name__}: {e}); please report it"
            failed += 1
            if args.json:
                print(json.dumps({"path": str(f), "error": message}), flush=True)
            print(f"digitos: error: {message}", file=sys.stderr, flush=True)
            continue
        if save_dir:
            seen = [d.pixels for d in result.digits] or [result.whole.pixels]
            stem = _unique_stem(f, used)  # a/x.png and b/x.png must not share x.png
            if len(seen) == 1:
                save_pixels(seen[0], save_dir / (stem + ".png"))
            for i, pixels in enumerate(seen if len(seen) > 1 else [], 1):
                save_pixels(pixels, save_dir / f"{stem}-{i}.png")
        if args.json:
            print(json.dumps(reading_json(str(f), result)), flush=True)
        else:
            print(reading_text(str(f), result), flush=True)
    return 1 if failed else 0
