"""Extension info and phone numbers, compared field by field with the recorded fixtures."""

from __future__ import annotations

from .conftest import ACCOUNT, EXT, MAIN_NUMBER, SMS_NUMBER, Emu, bearer, fixture, same_shape

ME = "/restapi/v1.0/account/~/extension/~"


async def test_extension_matches_the_fixture(emu: Emu) -> None:
    tokens = await emu.login()
    r = await emu.client.get(ME, headers=bearer(tokens["access_token"]))
    body = r.json()
    same_shape(body, fixture("extension"))
    assert body["id"] == int(EXT)
    assert body["account"]["id"] == ACCOUNT
    assert body["extensionNumber"] == "101"
    assert body["uri"] == f"http://127.0.0.1:9090/restapi/v1.0/account/{ACCOUNT}/extension/{EXT}"


async def test_real_ids_work_like_tilde_and_foreign_ids_are_not_found(emu: Emu) -> None:
    tokens = await emu.login()
    own = await emu.client.get(
        f"/restapi/v1.0/account/{ACCOUNT}/extension/{EXT}", headers=bearer(tokens["access_token"])
    )
    assert own.status_code == 200
    other = await emu.client.get(f"/restapi/v1.0/account/{ACCOUNT}/extension/1", headers=bearer(tokens["access_token"]))
    assert other.status_code == 404
    assert other.json()["errorCode"] == "CMN-102"


async def test_phone_numbers_match_the_fixture(emu: Emu) -> None:
    tokens = await emu.login()
    r = await emu.client.get(f"{ME}/phone-number", headers=bearer(tokens["access_token"]))
    body = r.json()
    expected = fixture("phone_numbers")
    same_shape(body, expected)
    assert [n["phoneNumber"] for n in body["records"]] == [SMS_NUMBER, MAIN_NUMBER]
    assert body["records"][0]["features"] == ["SmsSender", "CallerId", "MmsSender", "InternationalSmsSender"]
    assert body["records"][1]["usageType"] == "MainCompanyNumber"
    assert body["paging"] == expected["paging"]
    assert body["navigation"]["firstPage"]["uri"].endswith("/phone-number?page=1&perPage=100")


async def test_phone_number_paging(emu: Emu) -> None:
    tokens = await emu.login()
    r = await emu.client.get(f"{ME}/phone-number?perPage=1&page=2", headers=bearer(tokens["access_token"]))
    body = r.json()
    assert [n["phoneNumber"] for n in body["records"]] == [MAIN_NUMBER]
    assert body["paging"] == {
        "page": 2,
        "totalPages": 2,
        "perPage": 1,
        "totalElements": 2,
        "pageStart": 1,
        "pageEnd": 1,
    }
    assert set(body["navigation"]) == {"firstPage", "previousPage", "lastPage"}


async def test_missing_authorization(emu: Emu) -> None:
    r = await emu.client.get(ME)
    assert r.status_code == 401
    assert r.headers["X-Rate-Limit-Group"] == "Light"
