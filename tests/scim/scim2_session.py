"""A provisioning session through the gateway's SCIM facade with a real SCIM client library
(scim2-client, validating every answer against scim2-models), the way an HR sync job or a
governance tool would: discover, create, find by filter, replace, deactivate, reactivate,
manage a group's members, delete. Exits non-zero with the reason on the first surprise.

Usage: python3 scim2_session.py BASE_URL [API_KEY]
"""

import sys
import uuid

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    Email,
    EnterpriseUser,
    Error,
    Group,
    Name,
    PatchOp,
    PatchOperation,
    SearchRequest,
    User,
)


def expect(condition, what):
    if not condition:
        sys.exit(f"scim2 session: {what}")


def main(base_url, api_key):
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    http = Client(base_url=base_url, headers=headers)
    scim = SyncSCIMClient(http)
    scim.discover()
    config = scim.provider.config
    expect(config.patch.supported and config.filter.supported, "patch and filter are offered")
    expect(not config.bulk.supported, "bulk is not offered")

    EnterpriseUserModel = User[EnterpriseUser]
    login = f"scim2-{uuid.uuid4().hex[:8]}@example.com"
    user = EnterpriseUserModel(
        user_name=login,
        name=Name(given_name="Katherine", family_name="Johnson"),
        emails=[Email(value=login, type="work", primary=True)],
        title="Mathematician",
        active=True,
    )
    user[EnterpriseUser] = EnterpriseUser(department="Flight Research")
    created = scim.create(user)
    expect(created.id and created.user_name == login, f"created {created!r}")
    expect(created.active is True, "created active")
    expect(created[EnterpriseUser].department == "Flight Research", "enterprise attribute kept")

    found = scim.query(
        EnterpriseUserModel, query_parameters=SearchRequest(filter=f'userName eq "{login}"')
    )
    expect(found.total_results == 1 and found.resources[0].id == created.id, f"found {found!r}")

    created.title = "Aerospace Technologist"
    replaced = scim.replace(created)
    expect(replaced.title == "Aerospace Technologist", f"replaced {replaced!r}")

    deactivate = PatchOp[EnterpriseUserModel](
        operations=[PatchOperation(op="replace", path="active", value=False)]
    )
    patched = scim.modify(EnterpriseUserModel, created.id, deactivate)
    if patched is not None:
        expect(patched.active is False, f"deactivated {patched!r}")
    expect(scim.query(EnterpriseUserModel, created.id).active is False, "reads back inactive")
    reactivate = PatchOp[EnterpriseUserModel](
        operations=[PatchOperation(op="replace", path="active", value=True)]
    )
    scim.modify(EnterpriseUserModel, created.id, reactivate)
    expect(scim.query(EnterpriseUserModel, created.id).active is True, "reads back active")

    groups = scim.query(Group, query_parameters=SearchRequest(filter='displayName eq "Engineering"'))
    expect(groups.total_results == 1, f"one Engineering group: {groups!r}")
    group_id = groups.resources[0].id
    add = PatchOp[Group](
        operations=[PatchOperation(op="add", path="members", value=[{"value": created.id}])]
    )
    scim.modify(Group, group_id, add)
    group = scim.query(Group, group_id)
    expect(any(member.value == created.id for member in group.members or []), "member added")

    duplicate = scim.create(user, raise_scim_errors=False)
    expect(isinstance(duplicate, Error) and duplicate.scim_type == "uniqueness", f"{duplicate!r}")
    bad_filter = scim.query(
        EnterpriseUserModel,
        query_parameters={"filter": "userName eq"},
        check_request_payload=False,
        raise_scim_errors=False,
    )
    expect(isinstance(bad_filter, Error) and bad_filter.scim_type == "invalidFilter", f"{bad_filter!r}")

    scim.delete(EnterpriseUserModel, created.id)
    gone = scim.query(EnterpriseUserModel, created.id, raise_scim_errors=False)
    expect(isinstance(gone, Error) and gone.status == 404, f"deleted {gone!r}")
    print("scim2 session: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
