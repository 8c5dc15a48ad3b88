//! Discovery (RFC 7644 §4): `ServiceProviderConfig`, `ResourceTypes` and `Schemas`, saying
//! exactly what this service provider does. The User schema is made from the mapping table,
//! so it publishes the attributes that are mapped and no others.

use axum::extract::Path;
use serde_json::{Value, json};

use super::ScimJson;
use super::error::ScimError;
use super::mapping::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, Place, USER_ATTRIBUTES, USER_SCHEMA};
use super::server::{Caller, Scim};

const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// `GET /ServiceProviderConfig`.
pub async fn service_provider_config(
    axum::extract::State(scim): axum::extract::State<Scim>,
    caller: Caller,
) -> ScimJson {
    ScimJson(json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": scim.settings.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "An API key of the gateway's, or a JWT from its trusted issuer, \
                    as `Authorization: Bearer`; callers may instead present a client certificate \
                    over mutual TLS. The gateway's policy authorizes each operation as the gRPC \
                    method it performs.",
                "primary": true
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", caller.base_url)
        }
    }))
}

/// The resource types, by name.
fn all_resource_types(base_url: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "An Okta user. POST creates, PUT replaces the mapped profile, PATCH \
                changes it and `active` (false deactivates, true activates or reactivates), \
                DELETE deactivates then deletes.",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/User")}
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "An Okta group. Read, and PATCH of `members` (add, remove); the \
                gateway does not create, replace, rename or delete groups.",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/Group")}
        }),
    ]
}

/// `GET /ResourceTypes`.
pub async fn resource_types(caller: Caller) -> ScimJson {
    list(all_resource_types(&caller.base_url))
}

/// `GET /ResourceTypes/{name}`.
pub async fn resource_type(
    caller: Caller,
    Path(name): Path<String>,
) -> Result<ScimJson, ScimError> {
    all_resource_types(&caller.base_url)
        .into_iter()
        .find(|resource| resource["id"].as_str() == Some(name.as_str()))
        .map(ScimJson)
        .ok_or_else(|| ScimError::not_found("no such resource type"))
}

/// `GET /Schemas`.
pub async fn schemas(caller: Caller) -> ScimJson {
    list(all_schemas(&caller.base_url))
}

/// `GET /Schemas/{id}`.
pub async fn schema(caller: Caller, Path(id): Path<String>) -> Result<ScimJson, ScimError> {
    all_schemas(&caller.base_url)
        .into_iter()
        .find(|schema| schema["id"].as_str() == Some(id.as_str()))
        .map(ScimJson)
        .ok_or_else(|| ScimError::not_found("no such schema"))
}

/// A ListResponse of all of `resources`.
fn list(resources: Vec<Value>) -> ScimJson {
    ScimJson(json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    }))
}

/// An attribute definition (RFC 7643 §7).
fn attribute(name: &str, kind: &str, mutability: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": false,
        "caseExact": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "none",
    })
}

/// `attribute` with sub-attributes, multi-valued when `multi`.
fn complex(name: &str, multi: bool, subs: Vec<Value>, description: &str) -> Value {
    let mut value = attribute(name, "complex", "readWrite", description);
    value["multiValued"] = json!(multi);
    value["subAttributes"] = Value::Array(subs);
    value
}

/// The definition of each mapped attribute at `places`, grouped as SCIM nests them.
fn mapped_attributes(enterprise: bool) -> Vec<Value> {
    let mut attributes: Vec<Value> = Vec::new();
    let mut find_or_add = |name: &str, make: &dyn Fn() -> Value| -> usize {
        match attributes
            .iter()
            .position(|existing| existing["name"] == name)
        {
            Some(index) => index,
            None => {
                attributes.push(make());
                attributes.len() - 1
            }
        }
    };
    let mut subs_of: Vec<(usize, Value)> = Vec::new();
    for row in USER_ATTRIBUTES {
        let mutability = if row.read_only {
            "readOnly"
        } else {
            "readWrite"
        };
        let described = format!("Okta profile `{}`", row.okta);
        match (row.place, enterprise) {
            (Place::Top(name), false) | (Place::Enterprise(name), true) => {
                let mut value = attribute(name, "string", mutability, &described);
                if name == "userName" {
                    value["required"] = json!(true);
                    value["uniqueness"] = json!("server");
                }
                find_or_add(name, &|| value.clone());
            }
            (Place::Sub(name, sub), false) | (Place::EnterpriseSub(name, sub), true) => {
                let index = find_or_add(name, &|| complex(name, false, Vec::new(), name));
                subs_of.push((index, attribute(sub, "string", mutability, &described)));
            }
            (Place::Typed(name, _), false) => {
                let kinds: Vec<&str> = USER_ATTRIBUTES
                    .iter()
                    .filter_map(|other| match other.place {
                        Place::Typed(other_name, kind) if other_name == name => Some(kind),
                        _ => None,
                    })
                    .collect();
                find_or_add(name, &|| {
                    let mut kind = attribute("type", "string", "readWrite", "which Okta attribute");
                    kind["canonicalValues"] = json!(kinds);
                    complex(
                        name,
                        true,
                        vec![
                            attribute("value", "string", "readWrite", "the value"),
                            kind,
                            attribute("primary", "boolean", "readWrite", "the first of its kind"),
                        ],
                        &format!("one per type: {}", kinds.join(", ")),
                    )
                });
            }
            _ => {}
        }
    }
    if !enterprise {
        if let Some(index) = attributes
            .iter()
            .position(|existing| existing["name"] == "name")
        {
            subs_of.push((
                index,
                attribute(
                    "formatted",
                    "string",
                    "readOnly",
                    "the given, middle and family names",
                ),
            ));
        }
    }
    for (index, sub) in subs_of {
        if let Some(Value::Array(subs)) = attributes[index].get_mut("subAttributes") {
            subs.push(sub);
        }
    }
    attributes
}

/// The published schemas: User (what is mapped), the enterprise extension, and Group.
fn all_schemas(base_url: &str) -> Vec<Value> {
    let mut user = mapped_attributes(false);
    let mut id = attribute("id", "string", "readOnly", "Okta's user id");
    id["returned"] = json!("always");
    id["caseExact"] = json!(true);
    let mut external_id = attribute(
        "externalId",
        "string",
        "readWrite",
        "Okta custom profile attribute `externalId`",
    );
    external_id["caseExact"] = json!(true);
    let mut password = attribute("password", "string", "writeOnly", "set on create only");
    password["returned"] = json!("never");
    let mut groups = complex(
        "groups",
        true,
        vec![
            attribute("value", "string", "readOnly", "the group's id"),
            attribute("display", "string", "readOnly", "the group's name"),
        ],
        "not returned; use the Groups endpoint",
    );
    groups["mutability"] = json!("readOnly");
    user.extend([
        id,
        external_id,
        attribute(
            "active",
            "boolean",
            "readWrite",
            "false when Okta's status is STAGED, SUSPENDED or DEPROVISIONED",
        ),
        password,
    ]);
    let schema = |id: &str, name: &str, attributes: Vec<Value>| {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": id,
            "name": name,
            "description": format!("{name}, as the gateway maps it onto Okta"),
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base_url}/Schemas/{id}")}
        })
    };
    let mut group_members = complex(
        "members",
        true,
        vec![
            attribute("value", "string", "immutable", "the user's id"),
            attribute("display", "string", "readOnly", "the user's login"),
            attribute("type", "string", "immutable", "always User"),
            {
                let mut reference = attribute("$ref", "reference", "immutable", "the user's URI");
                reference["referenceTypes"] = json!(["User"]);
                reference
            },
        ],
        "the group's users, paged; change with PATCH add/remove",
    );
    group_members["returned"] = json!("default");
    vec![
        schema(USER_SCHEMA, "User", user),
        schema(ENTERPRISE_SCHEMA, "EnterpriseUser", mapped_attributes(true)),
        schema(
            GROUP_SCHEMA,
            "Group",
            vec![
                attribute("displayName", "string", "readOnly", "Okta `profile.name`"),
                group_members,
            ],
        ),
    ]
}
