"""Was contrast injected? Read from the headers, in the order they are to be trusted.

1. ContrastBolusAgent (0018,0010) (or Enhanced images' ContrastBolusAgentSequence): a name
   ("ISOVUE300/100", "11 ml Omniscan", "Iomeron 350") means injected, unless the route
   (ContrastBolusRoute) is oral only; a written refusal ("NONE", "NON", "AUCUN", "0") means
   not injected. DICOM asks for the Contrast/Bolus module only when contrast was used, so its
   absence proves nothing: many scanners leave it out, many anonymizers blank it.
2. ContrastBolusRoute alone: IV / INTRAVENOUS means injected, ORAL means not injected.
3. The words of SeriesDescription and ProtocolName, in the languages centers write:
   refusals first ("sans injection", "non injecté", "sans PDC", "C-", "w/o", "without
   contrast", "no contrast", "pré-contraste", "ohne KM", "nativ", "sin contraste", "senza
   mdc"), then injections ("injecté", "avec injection", "inj", "IV", "C+", "+C",
   "post-contrast", "with contrast", "mit KM", "con contraste", "gado", "Gd", and the phases
   only an injection has: arterial, artériel, portal, veineux, venous, tardif, delayed).
   A description that says both ("sans et avec injection", "C-/C+") settles nothing.
4. Otherwise: unknown.

Words are matched whole, case and accents aside ("INJECTE" is "injecté").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from server.inclusion.headers import SeriesSummary

ContrastState = Literal["injected", "not_injected", "unknown"]


@dataclass(frozen=True)
class ContrastEvidence:
    state: ContrastState
    reason: str


def _plain(text: str) -> str:
    """Casefolded, accents removed: "Injecté" -> "injecte"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_B = r"(?<![a-z0-9])"   # a word starts here
_E = r"(?![a-z0-9])"    # a word ends here
NEGATIVE = re.compile("|".join(_B + p + _E for p in (
    r"sans\s+(?:injection|inj|iv|contraste|pdc|produit\s+de\s+contraste|iode|gado\w*)",
    r"non[\s_-]?inj(?:ecte|ectee|ection)?",
    r"non[\s_-]?contrast(?:e|ed)?",
    r"without\s+contrast", r"no\s+contrast", r"w/o(?:\s+contrast)?",
    r"pr[e][\s_-]?(?:contrast|contraste|inj\w*|gado\w*)",
    r"ohne\s+km", r"nativ(?:e)?",
    r"sin\s+contraste", r"senza\s+(?:mdc|contrasto)",
)) + "|" + _B + r"c-(?![a-z0-9+])")
POSITIVE = re.compile("|".join(_B + p + _E for p in (
    r"injecte(?:e|s|es)?", r"avec\s+(?:injection|inj|contraste|pdc|iode|gado\w*)",
    r"inj(?:ection)?", r"iv",
    r"post[\s_-]?(?:contrast|contraste|inj\w*|gado\w*|gd)", r"with\s+contrast",
    r"mit\s+km", r"con\s+(?:contraste|mdc|contrasto)",
    r"gado\w*", r"gd", r"arterial", r"arteriel(?:le)?", r"portal(?:e)?", r"veineux",
    r"veineuse", r"venous", r"tardif", r"tardive", r"delayed",
)) + "|" + _B + r"(?:c\+|\+c" + _E + ")")
BOTH = re.compile(_B + r"(?:sans\s+et\s+avec|avec\s+et\s+sans|with\s+and\s+without|"
                  r"without\s+and\s+with|c-\s*/?\s*c\+|c\+\s*/?\s*c-)")
REFUSED_AGENT = re.compile(_B + r"(?:none|no|non|n|aucun|aucune|sans|nil|0|-+)" + _E + "$")


def contrast_evidence(series: SeriesSummary) -> ContrastEvidence:
    agent = series.contrast_agent.strip()
    route = _plain(series.contrast_route.strip())
    oral = "oral" in route and "intravenous" not in route and not re.search(_B + "iv" + _E,
                                                                              route)
    if agent:
        plain = _plain(agent)
        if REFUSED_AGENT.match(plain) or NEGATIVE.search(plain):
            return ContrastEvidence("not_injected", f"ContrastBolusAgent says {agent!r}")
        if oral:
            return ContrastEvidence("not_injected", f"ContrastBolusAgent {agent!r} given by "
                                    f"mouth (ContrastBolusRoute {series.contrast_route!r}), "
                                    "not injected")
        via = f", route {series.contrast_route}" if series.contrast_route else ""
        return ContrastEvidence("injected", f"ContrastBolusAgent {agent!r}{via}")
    if route:
        if oral:
            return ContrastEvidence("not_injected",
                                    f"ContrastBolusRoute {series.contrast_route!r}")
        if re.search(_B + r"(?:iv|intravenous|intraveineuse)" + _E, route):
            return ContrastEvidence("injected", f"ContrastBolusRoute {series.contrast_route!r}")
    for text in series.texts():
        if m := BOTH.search(_plain(text)):
            return ContrastEvidence("unknown", f"the description {text!r} says "
                                    f"{m.group(0)!r}: both")
    said_no = [(t, m.group(0)) for t in series.texts() if (m := NEGATIVE.search(_plain(t)))]
    rest = [(t, NEGATIVE.sub(" ", _plain(t))) for t in series.texts()]
    said_yes = [(t, m.group(0)) for t, plain in rest if (m := POSITIVE.search(plain))]
    if said_no and said_yes:
        return ContrastEvidence("unknown", f"the description says both "
                                f"{said_no[0][1]!r} and {said_yes[0][1]!r}")
    if said_no:
        return ContrastEvidence("not_injected", f"the description {said_no[0][0]!r} says "
                                f"{said_no[0][1]!r}")
    if said_yes:
        return ContrastEvidence("injected", f"the description {said_yes[0][0]!r} says "
                                f"{said_yes[0][1]!r}")
    return ContrastEvidence("unknown", "no ContrastBolusAgent and no contrast words in the "
                            "series description")
