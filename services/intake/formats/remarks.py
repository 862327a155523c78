"""Code lists the parsers flag: the No Surprises Act remark codes and the 835 claim statuses."""

from __future__ import annotations

# RARCs (remittance advice remark codes) that mark a claim as processed under the No Surprises Act
# or carry its QPA disclosures. Source: the X12 / CMS RARC list (x12.org/codes/remittance-advice-
# remark-codes) as we know it; no code-list lookup was available when this was written, so the
# meanings below are from memory and the codes marked "uncertain" must be checked against the
# current list before anyone relies on a single code (the list is versioned; codes get added and
# deactivated several times a year).
NSA_REMARK_CODES: frozenset[str] = frozenset(
    {
        # fairly sure: "Alert: the charge(s) for this service was processed in accordance with
        # Federal/State balance/surprise billing regulations ..." (added 2021 for the NSA)
        "N830",
        # uncertain, each of them: the NSA and QPA disclosure alerts added in the 2022 RARC updates
        # (initial payment under the NSA, QPA amount and how it was calculated, recognized amount,
        # eligibility for open negotiation and IDR). Listed by issue 11; meanings not verified here.
        *(f"N{code}" for code in range(860, 872)),
    }
)

# CLP02, claim status code (X12 code source 2/5010 835)
CLAIM_STATUS: dict[str, str] = {
    "1": "processed as primary",
    "2": "processed as secondary",
    "3": "processed as tertiary",
    "4": "denied",
    "19": "processed as primary, forwarded to additional payer(s)",
    "20": "processed as secondary, forwarded to additional payer(s)",
    "21": "processed as tertiary, forwarded to additional payer(s)",
    "22": "reversal of previous payment",
    "23": "not our claim, forwarded to additional payer(s)",
    "25": "predetermination pricing only, no payment",
}
REVERSAL = "22"

# SVC01-1 / SV101-1 product or service id qualifiers
PROCEDURE_QUALIFIERS = frozenset({"AD", "ER", "HC", "HP", "IV", "N4", "NU", "WK", "ZZ", "N1", "N2", "N3"})
