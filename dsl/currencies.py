"""ISO 4217 currency codes: which codes a rule file may use, and their minor units.

``ACTIVE`` is the ISO 4217 list of active codes (List One, as published by the
maintenance agency, SIX, in 2024-2025, including XCG, which replaces ANG from
2025, and ZWG). Codes withdrawn from circulation (e.g. HRK, SLL, ZWL, CUC)
are not in it: a new program must not be written in them.

``NOT_TENDER`` are active ISO codes that are not money a customer pays with
(precious metals, bond-market units, fund codes, the testing and "no
currency" codes). They are ISO codes, but a loyalty program in them is a
mistake, so the checker rejects them with a message of their own.

``MINOR_UNITS`` gives the number of decimals of each currency where it is not
two, for reports that print money (``cost``).
"""

from __future__ import annotations

ACTIVE: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
    BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK
    DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
    TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU
    XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG
    """.split()
)

NOT_TENDER: frozenset[str] = frozenset(
    """
    XAG XAU XPD XPT XBA XBB XBC XBD XDR XSU XUA XTS XXX
    BOV CHE CHW CLF COU MXV USN UYI UYW
    """.split()
)

# Decimals of the currencies whose minor unit is not 1/100.
_NOT_TWO = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


def is_valid(code: str) -> bool:
    """True for a currency customers can pay in: an active ISO 4217 code that is legal tender."""
    return code in ACTIVE and code not in NOT_TENDER


def minor_units(code: str) -> int:
    """How many decimals an amount in ``code`` has (2 for most currencies)."""
    return _NOT_TWO.get(code, 2)
