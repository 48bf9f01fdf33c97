"""The vendor's own management SDK (``huaweicloudsdkapig``) drives the admin API unchanged.

Every call is made as a user script makes it (``ApigClient`` + request/body models), every answer must
deserialize into the SDK's response model with the fields the vendor documents, and after each write the
effect is checked on the data plane through real sockets.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import aiohttp
import pytest
from huaweicloudsdkapig.v2 import (
    AclApiBindingCreate,
    AclBatchDelete,
    AclBindingBatchDelete,
    AddingBackendInstancesV2Request,
    ApiAclCreate,
    ApiActionInfo,
    ApiAuthCreate,
    ApiBatchPublish,
    ApiCheckInfoV2,
    ApiCreate,
    ApiDebugInfo,
    ApiGroupBase,
    ApiGroupCheck,
    ApiGroupCreate,
    ApiOperPluginInfo,
    ApiVersion,
    AppAclCreate,
    AppCodeCreate,
    AppCreate,
    AppQuotaCreate,
    AppResetCreate,
    AssociateAppsForAppQuotaRequest,
    AssociateCertificateV2Request,
    AssociateDomainV2Request,
    AssociateRequestThrottlingPolicyV2Request,
    AssociateSignatureKeyV2Request,
    AttachApiToPluginRequest,
    AttachOrDetachCertsReqBody,
    AttachOrDetachDomainInfo,
    AttachOrDetachDomainsReqBody,
    AttachPluginToApiRequest,
    AuthorizerCreate,
    BaseSignature,
    BatchAssociateCertsV2Request,
    BatchAssociateDomainsV2Request,
    BatchDeleteAclV2Request,
    BatchDeleteApiAclBindingV2Request,
    BatchDisableMembersRequest,
    BatchDisassociateCertsV2Request,
    BatchDisassociateDomainsV2Request,
    BatchDisassociateThrottlingPolicyV2Request,
    BatchEnableMembersRequest,
    BatchPublishOrOfflineApiV2Request,
    CancelingAuthorizationV2Request,
    CertForm,
    CertificateForm,
    ChangeApiVersionV2Request,
    CheckApiGroupsV2Request,
    CheckApisV2Request,
    CheckAppV2Request,
    CreateAclStrategyV2Request,
    CreateAnAppV2Request,
    CreateApiAclBindingV2Request,
    CreateApiGroupV2Request,
    CreateApiV2Request,
    CreateAppCodeAutoV2Request,
    CreateAppCodeV2Request,
    CreateAppQuotaBindingApp,
    CreateAppQuotaRequest,
    CreateAuthorizingAppsV2Request,
    CreateCertificateV2Request,
    CreateCustomAuthorizerV2Request,
    CreateEnvironmentV2Request,
    CreateEnvironmentVariableV2Request,
    CreateFeatureV2Request,
    CreateGatewayResponseV2Request,
    CreateMemberGroupRequest,
    CreateOrDeletePublishRecordForApiV2Request,
    CreatePluginRequest,
    CreateRequestThrottlingPolicyV2Request,
    CreateSignatureKeyV2Request,
    CreateSpecialThrottlingConfigurationV2Request,
    CreateVpcChannelV2Request,
    DebugApiV2Request,
    DeleteAclV2Request,
    DeleteApiAclBindingV2Request,
    DeleteApiByVersionIdV2Request,
    DeleteApiGroupV2Request,
    DeleteApiV2Request,
    DeleteAppAclRequest,
    DeleteAppCodeV2Request,
    DeleteAppQuotaRequest,
    DeleteAppV2Request,
    DeleteBackendInstanceV2Request,
    DeleteCertificateV2Request,
    DeleteCustomAuthorizerV2Request,
    DeleteEnvironmentV2Request,
    DeleteEnvironmentVariableV2Request,
    DeleteGatewayResponseTypeV2Request,
    DeleteGatewayResponseV2Request,
    DeleteMemberGroupRequest,
    DeletePluginRequest,
    DeleteRequestThrottlingPolicyV2Request,
    DeleteSignatureKeyV2Request,
    DeleteSpecialThrottlingConfigurationV2Request,
    DeleteVpcChannelV2Request,
    DetachApiFromPluginRequest,
    DetachPluginFromApiRequest,
    DisassociateAppQuotaWithAppRequest,
    DisassociateCertificateV2Request,
    DisassociateDomainV2Request,
    DisassociateRequestThrottlingPolicyV2Request,
    DisassociateSignatureKeyV2Request,
    EnvCreate,
    EnvVariableBase,
    EnvVariableCreate,
    ExportApiDefinitionsAsyncRequest,
    ExportApiDefinitionsV2Request,
    ExportOpenApiReq,
    FeatureToggle,
    ImportApiDefinitionsAsyncRequest,
    ImportApiDefinitionsAsyncRequestBody,
    ImportApiDefinitionsV2Request,
    ImportApiDefinitionsV2RequestBody,
    ListAclPolicyBindedToApiV2Request,
    ListAclStrategiesV2Request,
    ListApiAttachablePluginsRequest,
    ListApiAttachedPluginsRequest,
    ListApiGroupsQuantitiesV2Request,
    ListApiGroupsV2Request,
    ListApiQuantitiesV2Request,
    ListApiRuntimeDefinitionV2Request,
    ListApisBindedToAclPolicyV2Request,
    ListApisBindedToAppV2Request,
    ListApisBindedToRequestThrottlingPolicyV2Request,
    ListApisBindedToSignatureKeyV2Request,
    ListApisNotBoundWithSignatureKeyV2Request,
    ListApisUnbindedToAclPolicyV2Request,
    ListApisUnbindedToAppV2Request,
    ListApisUnbindedToRequestThrottlingPolicyV2Request,
    ListApisV2Request,
    ListApiVersionDetailV2Request,
    ListApiVersionsV2Request,
    ListAppCodesV2Request,
    ListAppQuantitiesV2Request,
    ListAppQuotaBindableAppsRequest,
    ListAppQuotaBoundAppsRequest,
    ListAppQuotasRequest,
    ListAppsBindedToApiV2Request,
    ListAppsV2Request,
    ListAttachedDomainsV2Request,
    ListBackendInstancesV2Request,
    ListCertificatesV2Request,
    ListCustomAuthorizersV2Request,
    ListEnvironmentsV2Request,
    ListEnvironmentVariablesV2Request,
    ListFeaturesV2Request,
    ListGatewayResponsesV2Request,
    ListMemberGroupsRequest,
    ListOrchestrationsRequest,
    ListPluginAttachableApisRequest,
    ListPluginAttachedApisRequest,
    ListPluginsRequest,
    ListRequestThrottlingPoliciesBindedToApiV2Request,
    ListRequestThrottlingPolicyV2Request,
    ListSignatureKeysBindedToApiV2Request,
    ListSignatureKeysV2Request,
    ListSpecialThrottlingConfigurationsV2Request,
    ListVpcChannelsV2Request,
    MemberGroupCreate,
    MemberGroupCreateBatch,
    MemberInfo,
    MembersBatchEnableOrDisable,
    PluginCreate,
    PluginOperApiInfo,
    ResettingAppSecretV2Request,
    ResponseInfo,
    ResponsesCreate,
    ShowAppBoundAppQuotaRequest,
    ShowAppQuotaRequest,
    ShowAsyncTaskResultRequest,
    ShowDetailsOfAclPolicyV2Request,
    ShowDetailsOfApiGroupV2Request,
    ShowDetailsOfApiV2Request,
    ShowDetailsOfAppAclRequest,
    ShowDetailsOfAppCodeV2Request,
    ShowDetailsOfAppV2Request,
    ShowDetailsOfCertificateV2Request,
    ShowDetailsOfCustomAuthorizersV2Request,
    ShowDetailsOfDomainNameCertificateV2Request,
    ShowDetailsOfEnvironmentVariableV2Request,
    ShowDetailsOfGatewayResponseTypeV2Request,
    ShowDetailsOfGatewayResponseV2Request,
    ShowDetailsOfInstanceV2Request,
    ShowDetailsOfMemberGroupRequest,
    ShowDetailsOfRequestThrottlingPolicyV2Request,
    ShowDetailsOfVpcChannelV2Request,
    ShowPluginRequest,
    SignApiBinding,
    SlDomainAccessSetting,
    ThrottleApiBindingCreate,
    ThrottleBaseInfo,
    ThrottleBindingBatchDelete,
    ThrottleSpecialCreate,
    ThrottleSpecialUpdate,
    UpdateAclStrategyV2Request,
    UpdateApiGroupV2Request,
    UpdateApiV2Request,
    UpdateAppAclRequest,
    UpdateAppQuotaRequest,
    UpdateAppV2Request,
    UpdateBackendInstancesV2Request,
    UpdateCertificateV2Request,
    UpdateCustomAuthorizerV2Request,
    UpdateDomainV2Request,
    UpdateEnvironmentV2Request,
    UpdateEnvironmentVariableV2Request,
    UpdateGatewayResponseTypeV2Request,
    UpdateGatewayResponseV2Request,
    UpdateHealthCheckRequest,
    UpdateMemberGroupRequest,
    UpdatePluginRequest,
    UpdateRequestThrottlingPolicyV2Request,
    UpdateSignatureKeyV2Request,
    UpdateSlDomainSettingV2Request,
    UpdateSpecialThrottlingConfigurationV2Request,
    UpdateVpcChannelV2Request,
    UrlDomainCreate,
    UrlDomainModify,
    VpcCreate,
    VpcHealthConfig,
    VpcMemberCreate,
    VpcMemberModify,
)
from huaweicloudsdkcore.http.formdata import FormFile

from gateway.lib import sdk_signer
from tests.support.helpers import RELEASE
from tests.support.sdk_helpers import INSTANCE, TOKEN, has, sdk, sdk_client, sdk_error, served, wait_until
from tests.support.tls_helpers import TestCA

I = INSTANCE  # noqa: E741
AUTH_URN = "urn:fss:r:p:function:default:sdk_auth_fn:latest"


@pytest.fixture
async def setup(make_gateway: Any) -> Any:
    """A gateway whose admin API requires the token (the SDK signs with it), and an SDK client."""
    gw = await make_gateway({}, admin_token=TOKEN, admin_token_required=True, app_code_allow_http=True)
    return gw, sdk_client(gw.admin_url)


async def _group(c: Any, name: str) -> Any:
    g = await sdk(c.create_api_group_v2, CreateApiGroupV2Request(instance_id=I, body=ApiGroupCreate(name=name)))
    has(g, "id", "name", "status", "sl_domain", "register_time", "update_time", "on_sell_status")
    return g


def _mock_api(group_id: str, name: str, uri: str, content: str, **extra: Any) -> ApiCreate:
    return ApiCreate(group_id=group_id, name=name, type=1, req_protocol="HTTP", req_method="GET", req_uri=uri,
                     auth_type=extra.pop("auth_type", "NONE"), backend_type="MOCK", match_mode="NORMAL",
                     mock_info={"result_content": content}, **extra)


async def _api(c: Any, group: Any, name: str, uri: str, content: str, **extra: Any) -> Any:
    api = await sdk(c.create_api_v2, CreateApiV2Request(instance_id=I, body=_mock_api(group.id, name, uri, content,
                                                                                         **extra)))
    has(api, "id", "name", "group_id", "group_name", "status", "req_uri", "req_method", "backend_type",
        "register_time", "mock_info")
    assert api.group_name == group.name
    return api


async def _publish(c: Any, api_id: str, env_id: str = RELEASE, action: str = "online") -> Any:
    body = ApiActionInfo(action=action, env_id=env_id, api_id=api_id, remark=f"{action} by the SDK")
    pub = await sdk(c.create_or_delete_publish_record_for_api_v2,
                    CreateOrDeletePublishRecordForApiV2Request(instance_id=I, body=body))
    has(pub, "publish_id", "api_id", "api_name", "env_id", "publish_time", "version_id")
    return pub


async def test_token_is_required_and_unimplemented_operations_answer_vendor_errors(setup: Any) -> None:
    gw, c = setup
    wrong = sdk_client(gw.admin_url, sk="not-the-admin-token")
    err = await sdk_error(wrong.list_api_groups_v2, ListApiGroupsV2Request(instance_id=I))
    assert (err.status_code, err.error_code) == (401, "APIG.1002")
    async with aiohttp.ClientSession() as s, s.get(gw.admin_url + "/v1/snapshot/version",
                                                   headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200  # the bearer token keeps working
    err = await sdk_error(c.list_orchestrations, ListOrchestrationsRequest(instance_id=I))
    assert err.status_code == 404 and err.error_code == "APIG.1001" and "not implemented" in err.error_msg


async def test_groups_envs_variables_apis_drafts_and_versions(setup: Any) -> None:
    gw, c = setup
    g1 = await _group(c, "sdk_group_one")
    g2 = await _group(c, "sdk_group_two")
    assert g1.sl_domain == f"{g1.id}.apic.local" and g1.sl_domain != g2.sl_domain
    listed = await sdk(c.list_api_groups_v2, ListApiGroupsV2Request(instance_id=I, name="sdk_group"))
    assert listed.total == 2 and {g.id for g in listed.groups} == {g1.id, g2.id}
    changed = await sdk(c.update_api_group_v2, UpdateApiGroupV2Request(
        instance_id=I, group_id=g2.id, body=ApiGroupBase(name="sdk_group_two_b", remark="renamed")))
    has(changed, "id", "name", "sl_domain")
    shown = await sdk(c.show_details_of_api_group_v2, ShowDetailsOfApiGroupV2Request(instance_id=I, group_id=g2.id))
    assert shown.name == "sdk_group_two_b" and shown.sl_domain == g2.sl_domain

    env = await sdk(c.create_environment_v2, CreateEnvironmentV2Request(instance_id=I, body=EnvCreate(name="SDK_TEST")))
    has(env, "id", "name", "create_time")
    env = await sdk(c.update_environment_v2, UpdateEnvironmentV2Request(
        instance_id=I, env_id=env.id, body=EnvCreate(name="SDK_TEST", remark="testing")))
    envs = await sdk(c.list_environments_v2, ListEnvironmentsV2Request(instance_id=I))
    assert [e.name for e in envs.envs] == ["RELEASE", "SDK_TEST"]
    var = await sdk(c.create_environment_variable_v2, CreateEnvironmentVariableV2Request(
        instance_id=I, body=EnvVariableCreate(group_id=g1.id, env_id=env.id, variable_name="greeting",
                                              variable_value="hello")))
    has(var, "id", "group_id", "env_id", "variable_name", "variable_value")
    var = await sdk(c.update_environment_variable_v2, UpdateEnvironmentVariableV2Request(
        instance_id=I, env_variable_id=var.id, body=EnvVariableBase(variable_value="hello again")))
    assert var.variable_value == "hello again"
    variables = await sdk(c.list_environment_variables_v2, ListEnvironmentVariablesV2Request(
        instance_id=I, group_id=g1.id))
    assert [v.variable_name for v in variables.variables] == ["greeting"]

    api = await _api(c, g1, "sdk_mock", "/sdk/mock", "version one")
    host = g1.sl_domain
    assert (await served(gw.url, "/sdk/mock", host))[0] == 404  # created, not published
    pub1 = await _publish(c, api.id)
    assert await served(gw.url, "/sdk/mock", host) == (200, "version one")
    assert (await served(gw.url, "/sdk/mock", g2.sl_domain))[0] == 404  # the other group's sub-domain

    # editing changes the draft; RELEASE keeps serving what was published
    await sdk(c.update_api_v2, UpdateApiV2Request(instance_id=I, api_id=api.id,
                                                  body=_mock_api(g1.id, "sdk_mock", "/sdk/mock", "version two")))
    detail = await sdk(c.show_details_of_api_v2, ShowDetailsOfApiV2Request(instance_id=I, api_id=api.id))
    assert detail.mock_info.result_content == "version two"
    assert await served(gw.url, "/sdk/mock", host) == (200, "version one")
    runtime = await sdk(c.list_api_runtime_definition_v2, ListApiRuntimeDefinitionV2Request(
        instance_id=I, api_id=api.id))
    has(runtime, "id", "name", "run_env_id", "run_env_name", "publish_id", "group_id")
    pub2 = await _publish(c, api.id)  # publishing copies the draft
    assert await served(gw.url, "/sdk/mock", host) == (200, "version two")
    versions = await sdk(c.list_api_versions_v2, ListApiVersionsV2Request(instance_id=I, api_id=api.id))
    assert versions.total == 2
    for v in versions.api_versions:
        has(v, "version_id", "version_no", "api_id", "env_id", "env_name", "publish_time", "status")
    assert [(v.version_id, v.status) for v in versions.api_versions] == [(pub2.version_id, 1), (pub1.version_id, 2)]
    old = await sdk(c.list_api_version_detail_v2, ListApiVersionDetailV2Request(
        instance_id=I, version_id=pub1.version_id))
    has(old, "id", "name", "version_id", "run_env_id", "publish_time", "mock_info")
    assert old.mock_info.result_content == "version one"
    switched = await sdk(c.change_api_version_v2, ChangeApiVersionV2Request(
        instance_id=I, api_id=api.id, body=ApiVersion(version_id=pub1.version_id)))
    has(switched, "publish_id", "api_id", "env_id", "version_id", "publish_time")
    assert await served(gw.url, "/sdk/mock", host) == (200, "version one")
    await sdk(c.delete_api_by_version_id_v2, DeleteApiByVersionIdV2Request(instance_id=I,
                                                                            version_id=pub1.version_id))
    assert (await served(gw.url, "/sdk/mock", host))[0] == 404  # the effective version went offline

    # batch publish in another environment (selected by X-Stage): publishing copies the draft again
    batch = await sdk(c.batch_publish_or_offline_api_v2, BatchPublishOrOfflineApiV2Request(
        instance_id=I, action="online", body=ApiBatchPublish(apis=[api.id], env_id=env.id)))
    assert [s.api_id for s in batch.success] == [api.id] and batch.failure == []
    has(batch.success[0], "publish_id", "api_id", "env_id", "version_id", "publish_time")
    assert await served(gw.url, "/sdk/mock", host, **{"X-Stage": "SDK_TEST"}) == (200, "version two")
    apis = await sdk(c.list_apis_v2, ListApisV2Request(instance_id=I, env_id=env.id))
    assert [a.id for a in apis.apis] == [api.id] and apis.apis[0].run_env_name == "SDK_TEST"
    await _publish(c, api.id, env.id, "offline")
    assert (await served(gw.url, "/sdk/mock", host, **{"X-Stage": "SDK_TEST"}))[0] == 404

    # deletes
    await sdk(c.delete_environment_variable_v2, DeleteEnvironmentVariableV2Request(instance_id=I,
                                                                                  env_variable_id=var.id))
    await sdk(c.delete_environment_v2, DeleteEnvironmentV2Request(instance_id=I, env_id=env.id))
    await _publish(c, api.id)
    assert (await served(gw.url, "/sdk/mock", host))[0] == 200
    await sdk(c.delete_api_v2, DeleteApiV2Request(instance_id=I, api_id=api.id))
    assert (await served(gw.url, "/sdk/mock", host))[0] == 404
    assert not gw.gw.document.get("api_versions") and not gw.gw.document.get("api_drafts")
    await sdk(c.delete_api_group_v2, DeleteApiGroupV2Request(instance_id=I, group_id=g2.id))
    err = await sdk_error(c.show_details_of_api_group_v2, ShowDetailsOfApiGroupV2Request(instance_id=I,
                                                                                          group_id=g2.id))
    assert (err.status_code, err.error_code) == (404, "APIG.3001")


async def test_throttles_specials_and_bindings(setup: Any) -> None:
    gw, c = setup
    g = await _group(c, "sdk_throttled")
    api = await _api(c, g, "sdk_limited", "/limited", "ok")
    pub = await _publish(c, api.id)
    body = ThrottleBaseInfo(name="sdk_two_per_minute", api_call_limits=2, time_interval=1, time_unit="MINUTE",
                            type=1, remark="two")
    t = await sdk(c.create_request_throttling_policy_v2, CreateRequestThrottlingPolicyV2Request(instance_id=I,
                                                                                               body=body))
    has(t, "id", "name", "api_call_limits", "time_interval", "time_unit", "type", "bind_num", "create_time",
        "is_inclu_special_throttle")
    assert t.bind_num == 0
    bound = await sdk(c.associate_request_throttling_policy_v2, AssociateRequestThrottlingPolicyV2Request(
        instance_id=I, body=ThrottleApiBindingCreate(strategy_id=t.id, publish_ids=[pub.publish_id])))
    assert len(bound.throttle_applys) == 1
    has(bound.throttle_applys[0], "id", "publish_id", "strategy_id", "apply_time", "scope")
    statuses = [(await served(gw.url, "/limited", g.sl_domain))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    apis = await sdk(c.list_apis_binded_to_request_throttling_policy_v2,
                     ListApisBindedToRequestThrottlingPolicyV2Request(instance_id=I, throttle_id=t.id))
    assert apis.total == 1
    row = apis.apis[0]
    has(row, "id", "name", "throttle_apply_id", "apply_time", "run_env_id", "run_env_name", "publish_id",
        "group_name", "req_uri", "auth_type")
    assert (row.id, row.name, row.throttle_apply_id) == (api.id, "sdk_limited", bound.throttle_applys[0].id)
    pols = await sdk(c.list_request_throttling_policies_binded_to_api_v2,
                     ListRequestThrottlingPoliciesBindedToApiV2Request(instance_id=I, api_id=api.id))
    has(pols.throttles[0], "id", "name", "bind_id", "bind_time", "env_name", "api_call_limits")
    assert pols.throttles[0].id == t.id
    shown = await sdk(c.show_details_of_request_throttling_policy_v2,
                      ShowDetailsOfRequestThrottlingPolicyV2Request(instance_id=I, throttle_id=t.id))
    assert shown.bind_num == 1
    # raise the limit: served again at once
    body.api_call_limits = 100
    await sdk(c.update_request_throttling_policy_v2, UpdateRequestThrottlingPolicyV2Request(
        instance_id=I, throttle_id=t.id, body=body))
    assert (await served(gw.url, "/limited", g.sl_domain))[0] == 200
    special = await sdk(c.create_special_throttling_configuration_v2, CreateSpecialThrottlingConfigurationV2Request(
        instance_id=I, throttle_id=t.id, body=ThrottleSpecialCreate(call_limits=5, object_id="user-1",
                                                                     object_type="USER")))
    has(special, "id", "call_limits", "object_id", "object_type", "throttle_id")
    await sdk(c.update_special_throttling_configuration_v2, UpdateSpecialThrottlingConfigurationV2Request(
        instance_id=I, throttle_id=t.id, strategy_id=special.id, body=ThrottleSpecialUpdate(call_limits=7)))
    specials = await sdk(c.list_special_throttling_configurations_v2, ListSpecialThrottlingConfigurationsV2Request(
        instance_id=I, throttle_id=t.id))
    assert [s.call_limits for s in specials.throttle_specials] == [7]
    await sdk(c.delete_special_throttling_configuration_v2, DeleteSpecialThrottlingConfigurationV2Request(
        instance_id=I, throttle_id=t.id, strategy_id=special.id))
    # unbind one, then bind again and unbind in a batch
    await sdk(c.disassociate_request_throttling_policy_v2, DisassociateRequestThrottlingPolicyV2Request(
        instance_id=I, throttle_binding_id=bound.throttle_applys[0].id))
    again = await sdk(c.associate_request_throttling_policy_v2, AssociateRequestThrottlingPolicyV2Request(
        instance_id=I, body=ThrottleApiBindingCreate(strategy_id=t.id, publish_ids=[pub.publish_id])))
    batch = await sdk(c.batch_disassociate_throttling_policy_v2, BatchDisassociateThrottlingPolicyV2Request(
        instance_id=I, action="delete", body=ThrottleBindingBatchDelete(
            throttle_bindings=[again.throttle_applys[0].id])))
    assert batch.success_count == 1
    listed = await sdk(c.list_request_throttling_policy_v2, ListRequestThrottlingPolicyV2Request(instance_id=I))
    assert [x.bind_num for x in listed.throttles] == [0]
    await sdk(c.delete_request_throttling_policy_v2, DeleteRequestThrottlingPolicyV2Request(instance_id=I,
                                                                                            throttle_id=t.id))
    assert not gw.gw.document.get("throttles")


async def test_apps_appcodes_and_authorizations(setup: Any) -> None:
    gw, c = setup
    g = await _group(c, "sdk_apps")
    api = await _api(c, g, "sdk_app_only", "/app-only", "for apps", auth_type="APP",
                     auth_opt={"app_code_auth_type": "HEADER"})
    await _publish(c, api.id)
    app = await sdk(c.create_an_app_v2, CreateAnAppV2Request(instance_id=I, body=AppCreate(name="sdk_app")))
    has(app, "id", "name", "app_key", "app_secret", "creator", "app_type", "status", "register_time")
    assert (app.creator, app.app_type, app.status) == ("USER", "apig", 1)
    code = await sdk(c.create_app_code_v2, CreateAppCodeV2Request(
        instance_id=I, app_id=app.id, body=AppCodeCreate(app_code="A" * 64)))
    has(code, "id", "app_code", "app_id", "create_time")
    auto = await sdk(c.create_app_code_auto_v2, CreateAppCodeAutoV2Request(instance_id=I, app_id=app.id))
    has(auto, "id", "app_code", "app_id")
    codes = await sdk(c.list_app_codes_v2, ListAppCodesV2Request(instance_id=I, app_id=app.id))
    assert codes.total == 2
    assert (await served(gw.url, "/app-only", g.sl_domain, **{"X-Apig-AppCode": "A" * 64}))[0] == 403
    auths = await sdk(c.create_authorizing_apps_v2, CreateAuthorizingAppsV2Request(
        instance_id=I, body=ApiAuthCreate(env_id=RELEASE, app_ids=[app.id], api_ids=[api.id])))
    has(auths.auths[0], "id", "api_id", "app_id", "auth_result", "auth_time", "auth_role")
    st, text = await served(gw.url, "/app-only", g.sl_domain, **{"X-Apig-AppCode": "A" * 64})
    assert (st, text) == (200, "for apps"), text
    by_api = await sdk(c.list_apps_binded_to_api_v2, ListAppsBindedToApiV2Request(instance_id=I, api_id=api.id))
    assert by_api.total == 1
    has(by_api.auths[0], "id", "app_id", "app_name", "api_id", "api_name", "env_id", "env_name", "group_name",
        "auth_time", "app_type", "app_creator", "publish_id", "auth_role")
    by_app = await sdk(c.list_apis_binded_to_app_v2, ListApisBindedToAppV2Request(instance_id=I, app_id=app.id))
    assert [a.api_id for a in by_app.auths] == [api.id]
    reset = await sdk(c.resetting_app_secret_v2, ResettingAppSecretV2Request(
        instance_id=I, app_id=app.id, body=AppResetCreate(app_secret="new-secret-0123456789")))
    has(reset, "id", "app_key", "app_secret")
    shown = await sdk(c.show_details_of_app_v2, ShowDetailsOfAppV2Request(instance_id=I, app_id=app.id))
    assert shown.app_secret == "******" and shown.creator == "USER"
    await sdk(c.canceling_authorization_v2, CancelingAuthorizationV2Request(instance_id=I,
                                                                           app_auth_id=auths.auths[0].id))
    assert (await served(gw.url, "/app-only", g.sl_domain, **{"X-Apig-AppCode": "A" * 64}))[0] == 403
    await sdk(c.delete_app_code_v2, DeleteAppCodeV2Request(instance_id=I, app_id=app.id, app_code_id=code.id))
    apps = await sdk(c.list_apps_v2, ListAppsV2Request(instance_id=I))
    assert [a.id for a in apps.apps] == [app.id]
    await sdk(c.delete_app_v2, DeleteAppV2Request(instance_id=I, app_id=app.id))
    assert not gw.gw.document.get("app_codes")


async def test_acls_and_bindings(setup: Any) -> None:
    gw, c = setup
    g = await _group(c, "sdk_acl")
    api = await _api(c, g, "sdk_guarded", "/guarded", "let in")
    pub = await _publish(c, api.id)
    acl = await sdk(c.create_acl_strategy_v2, CreateAclStrategyV2Request(instance_id=I, body=ApiAclCreate(
        acl_name="sdk_deny_local", acl_type="DENY", acl_value="127.0.0.1", entity_type="IP")))
    has(acl, "id", "acl_name", "acl_type", "acl_value", "entity_type", "update_time")
    bound = await sdk(c.create_api_acl_binding_v2, CreateApiAclBindingV2Request(
        instance_id=I, body=AclApiBindingCreate(acl_id=acl.id, publish_ids=[pub.publish_id])))
    has(bound.acl_bindings[0], "id", "api_id", "env_id", "acl_id", "create_time")
    assert (await served(gw.url, "/guarded", g.sl_domain))[0] == 403
    acls = await sdk(c.list_acl_policy_binded_to_api_v2, ListAclPolicyBindedToApiV2Request(
        instance_id=I, api_id=api.id))
    has(acls.acls[0], "acl_id", "acl_name", "entity_type", "acl_type", "acl_value", "env_id", "env_name",
        "bind_id", "bind_time")
    assert (acls.acls[0].acl_id, acls.acls[0].bind_id) == (acl.id, bound.acl_bindings[0].id)
    apis = await sdk(c.list_apis_binded_to_acl_policy_v2, ListApisBindedToAclPolicyV2Request(
        instance_id=I, acl_id=acl.id))
    has(apis.apis[0], "api_id", "api_name", "env_id", "env_name", "bind_id", "bind_time", "group_name",
        "publish_id", "req_method")
    batch = await sdk(c.batch_delete_api_acl_binding_v2, BatchDeleteApiAclBindingV2Request(
        instance_id=I, action="delete", body=AclBindingBatchDelete(acl_bindings=[bound.acl_bindings[0].id])))
    assert batch.success_count == 1
    assert await served(gw.url, "/guarded", g.sl_domain) == (200, "let in")
    other = await sdk(c.create_acl_strategy_v2, CreateAclStrategyV2Request(instance_id=I, body=ApiAclCreate(
        acl_name="sdk_other", acl_type="PERMIT", acl_value="10.0.0.1", entity_type="IP")))
    await sdk(c.delete_acl_v2, DeleteAclV2Request(instance_id=I, acl_id=other.id))
    done = await sdk(c.batch_delete_acl_v2, BatchDeleteAclV2Request(instance_id=I, action="delete",
                                                                    body=AclBatchDelete(acls=[acl.id])))
    assert done.success_count == 1
    listed = await sdk(c.list_acl_strategies_v2, ListAclStrategiesV2Request(instance_id=I))
    assert listed.total == 0


async def test_domains_signs_channels_and_responses(setup: Any, echo_backend: Any) -> None:
    gw, c = setup
    backend, address = echo_backend
    g = await _group(c, "sdk_domains")
    await _group(c, "sdk_other_group")  # two groups: the Host decides
    api = await _api(c, g, "sdk_by_domain", "/by-domain", "domain ok")
    pub = await _publish(c, api.id)
    assert (await served(gw.url, "/by-domain", "shop.example.test"))[0] == 404
    dom = await sdk(c.associate_domain_v2, AssociateDomainV2Request(instance_id=I, group_id=g.id, body=UrlDomainCreate(
        url_domain="shop.example.test", min_ssl_version="TLSv1.2")))
    has(dom, "id", "url_domain", "status", "min_ssl_version", "is_http_redirect_to_https")
    assert await served(gw.url, "/by-domain", "shop.example.test") == (200, "domain ok")
    dom2 = await sdk(c.update_domain_v2, UpdateDomainV2Request(instance_id=I, group_id=g.id, domain_id=dom.id,
                                                               body=UrlDomainModify(min_ssl_version="TLSv1.1",
                                                                                    is_http_redirect_to_https=True)))
    assert dom2.min_ssl_version == "TLSv1.1" and dom2.is_http_redirect_to_https is True
    async with aiohttp.ClientSession() as s:  # plain HTTP on that domain is redirected to HTTPS
        async with s.get(gw.url + "/by-domain?x=1", headers={"Host": "shop.example.test:8080"},
                         allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (301, "https://shop.example.test/by-domain?x=1")
        async with s.post(gw.url + "/by-domain", headers={"Host": "shop.example.test"}, allow_redirects=False) as r:
            assert r.status == 308
    assert await served(gw.url, "/by-domain", g.sl_domain) == (200, "domain ok")  # other hosts are not
    shown = await sdk(c.show_details_of_api_group_v2, ShowDetailsOfApiGroupV2Request(instance_id=I, group_id=g.id))
    assert [(d.id, d.domain) for d in shown.url_domains] == [(dom.id, "shop.example.test")]
    await sdk(c.update_sl_domain_setting_v2, UpdateSlDomainSettingV2Request(
        instance_id=I, group_id=g.id, body=SlDomainAccessSetting(sl_domain_access_enabled=False)))
    assert (await served(gw.url, "/by-domain", g.sl_domain))[0] == 404  # the debugging sub-domain is off
    await sdk(c.update_sl_domain_setting_v2, UpdateSlDomainSettingV2Request(
        instance_id=I, group_id=g.id, body=SlDomainAccessSetting(sl_domain_access_enabled=True)))
    assert await served(gw.url, "/by-domain", g.sl_domain) == (200, "domain ok")
    await sdk(c.disassociate_domain_v2, DisassociateDomainV2Request(instance_id=I, group_id=g.id, domain_id=dom.id))
    assert (await served(gw.url, "/by-domain", "shop.example.test"))[0] == 404

    sign = await sdk(c.create_signature_key_v2, CreateSignatureKeyV2Request(instance_id=I, body=BaseSignature(
        name="sdk_sign", sign_type="hmac")))
    has(sign, "id", "name", "sign_type", "sign_key", "sign_secret")
    bound = await sdk(c.associate_signature_key_v2, AssociateSignatureKeyV2Request(
        instance_id=I, body=SignApiBinding(sign_id=sign.id, publish_ids=[pub.publish_id])))
    has(bound.bindings[0], "id", "publish_id", "api_id", "api_name", "sign_id", "sign_name", "env_id",
        "binding_time", "group_name")
    by_sign = await sdk(c.list_apis_binded_to_signature_key_v2, ListApisBindedToSignatureKeyV2Request(
        instance_id=I, sign_id=sign.id))
    assert [b.api_id for b in by_sign.bindings] == [api.id]
    by_api = await sdk(c.list_signature_keys_binded_to_api_v2, ListSignatureKeysBindedToApiV2Request(
        instance_id=I, api_id=api.id))
    has(by_api.bindings[0], "id", "sign_id", "sign_name", "sign_type", "binding_time", "env_name")
    assert by_api.bindings[0].id == bound.bindings[0].id
    await sdk(c.disassociate_signature_key_v2, DisassociateSignatureKeyV2Request(
        instance_id=I, sign_bindings_id=bound.bindings[0].id))
    keys = await sdk(c.list_signature_keys_v2, ListSignatureKeysV2Request(instance_id=I))
    assert [k.id for k in keys.signs] == [sign.id]
    await sdk(c.delete_signature_key_v2, DeleteSignatureKeyV2Request(instance_id=I, sign_id=sign.id))

    host, port = address.split(":")
    chan = await sdk(c.create_vpc_channel_v2, CreateVpcChannelV2Request(instance_id=I, body=VpcCreate(
        name="sdk_channel", type=2, port=int(port), balance_strategy=1, member_type="ip",
        members=[MemberInfo(host=host, weight=1)])))
    has(chan, "id", "name", "port", "type", "balance_strategy", "member_type")
    members = await sdk(c.list_backend_instances_v2, ListBackendInstancesV2Request(instance_id=I,
                                                                                 vpc_channel_id=chan.id))
    assert [m.host for m in members.members] == [host]
    await sdk(c.adding_backend_instances_v2, _add_member(chan.id, host))
    channels = await sdk(c.list_vpc_channels_v2, ListVpcChannelsV2Request(instance_id=I))
    assert [x.id for x in channels.vpc_channels] == [chan.id]
    via = ApiCreate(group_id=g.id, name="sdk_via_channel", type=1, req_protocol="HTTP", req_method="GET",
                    req_uri="/via-channel", auth_type="NONE", backend_type="HTTP", match_mode="NORMAL",
                    backend_api={"req_protocol": "HTTP", "req_method": "GET", "req_uri": "/echo", "timeout": 5000,
                                 "vpc_channel_status": 1, "vpc_channel_info": {"vpc_channel_id": chan.id}})
    via_api = await sdk(c.create_api_v2, CreateApiV2Request(instance_id=I, body=via))
    await _publish(c, via_api.id)
    status, _ = await served(gw.url, "/via-channel", g.sl_domain)
    assert status == 200 and backend.hits >= 1

    resp = await sdk(c.create_gateway_response_v2, CreateGatewayResponseV2Request(
        instance_id=I, group_id=g.id, body=ResponsesCreate(name="sdk_responses", responses={
            "DEFAULT_4XX": {"status": 404, "body": '{"sdk":"$context.error.code"}'}})))
    has(resp, "id", "name", "responses")
    listed = await sdk(c.list_gateway_responses_v2, ListGatewayResponsesV2Request(instance_id=I, group_id=g.id))
    assert [r.id for r in listed.responses] == [resp.id]
    await sdk(c.delete_api_v2, DeleteApiV2Request(instance_id=I, api_id=via_api.id))
    await sdk(c.delete_vpc_channel_v2, DeleteVpcChannelV2Request(instance_id=I, vpc_channel_id=chan.id))
    assert not gw.gw.document.get("vpc_channels")


def _add_member(channel_id: str, host: str) -> Any:
    return AddingBackendInstancesV2Request(instance_id=I, vpc_channel_id=channel_id,
                                           body=VpcMemberCreate(members=[MemberInfo(host=host, weight=2)]))


def test_compatibility_table_matches_the_admin_routes() -> None:
    """docs/admin-api.md lists every SDK operation; 'yes' exactly for the ones the admin app routes."""
    import inspect
    import re
    from pathlib import Path

    import huaweicloudsdkapig.v2.apig_client as client_module

    from gateway.core.settings import load_settings
    from gateway.process.server import Gateway

    app = Gateway(load_settings({}, environ={})).make_admin_app("127.0.0.1:0")

    def norm(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    routed = {(r.method, norm(r.resource.get_info().get("formatter") or r.resource.get_info().get("path", "")))
              for r in app.router.routes() if r.resource is not None}
    source = inspect.getsource(client_module)
    sdk_ops = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r'def _(\w+)_http_info\(cls, request\):\s*http_info = \{\s*"method": "(\w+)",\s*"resource_path": "([^"]+)"',
        source)}
    assert len(sdk_ops) > 150
    doc = (Path(__file__).parents[3] / "docs" / "admin-api.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| \w+ \| `[^`]+` \| (yes|no) \|$", doc, re.M))
    assert set(table) == set(sdk_ops), set(table) ^ set(sdk_ops)
    for op, (method, path) in sdk_ops.items():
        assert (table[op] == "yes") == ((method, norm(path)) in routed), op
    # and this suite calls every supported operation through the SDK
    this_file = Path(__file__).read_text()
    assert not [op for op, yes in table.items() if yes == "yes" and f"c.{op}," not in this_file]


async def test_authorizers_plugins_app_acls_and_remaining_updates(setup: Any, echo_backend: Any) -> None:
    gw, c = setup
    _, address = echo_backend
    doc = dict(gw.gw.document)
    doc["functions"] = [{"function_urn": AUTH_URN, "entry": "gateway.examples.functions:token_authorizer"}]
    await gw.gw.push_document(doc)
    g = await _group(c, "sdk_rest")
    # a custom authorizer guarding an API
    body = AuthorizerCreate(name="sdk_authorizer", type="FRONTEND", authorizer_type="FUNC", authorizer_uri=AUTH_URN,
                            ttl=0, user_data="let-me-in")
    authz = await sdk(c.create_custom_authorizer_v2, CreateCustomAuthorizerV2Request(instance_id=I, body=body))
    has(authz, "id", "name", "type", "authorizer_type", "authorizer_uri", "ttl")
    api = await _api(c, g, "sdk_guarded_fn", "/fn-guarded", "behind the authorizer", auth_type="AUTHORIZER",
                     authorizer_id=authz.id)
    pub = await _publish(c, api.id)
    host = g.sl_domain
    assert (await served(gw.url, "/fn-guarded", host, Authorization="Bearer let-me-in"))[0] == 200
    assert (await served(gw.url, "/fn-guarded", host, Authorization="Bearer nope"))[0] == 500  # AUTHORIZER_FAILURE
    body.user_data = "another-secret"
    await sdk(c.update_custom_authorizer_v2, UpdateCustomAuthorizerV2Request(instance_id=I, authorizer_id=authz.id,
                                                                             body=body))
    assert (await served(gw.url, "/fn-guarded", host, Authorization="Bearer another-secret"))[0] == 200
    shown = await sdk(c.show_details_of_custom_authorizers_v2, ShowDetailsOfCustomAuthorizersV2Request(
        instance_id=I, authorizer_id=authz.id))
    assert shown.user_data == "******"  # a credential: masked
    listed = await sdk(c.list_custom_authorizers_v2, ListCustomAuthorizersV2Request(instance_id=I))
    assert [a.id for a in listed.authorizer_list] == [authz.id]

    # a cors plug-in attached to the published API, from both sides
    content = '{"allow_origin": "https://app.example", "allow_methods": "GET", "max_age": 600}'
    plugin = await sdk(c.create_plugin, CreatePluginRequest(instance_id=I, body=PluginCreate(
        plugin_name="sdk_cors", plugin_type="cors", plugin_scope="global", plugin_content=content)))
    has(plugin, "plugin_id", "plugin_name", "plugin_type", "plugin_scope", "plugin_content", "create_time")
    attached = await sdk(c.attach_plugin_to_api, AttachPluginToApiRequest(
        instance_id=I, api_id=api.id, body=ApiOperPluginInfo(env_id=RELEASE, plugin_ids=[plugin.plugin_id])))
    has(attached.attached_plugins[0], "plugin_attach_id", "plugin_id", "api_id", "env_id", "attached_time")
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    async with aiohttp.ClientSession() as s, s.options(gw.url + "/fn-guarded",
                                                       headers={"Host": host, **preflight}) as r:
        assert r.headers.get("Access-Control-Max-Age") == "600"
    by_api = await sdk(c.list_api_attached_plugins, ListApiAttachedPluginsRequest(instance_id=I, api_id=api.id))
    assert [p.plugin_id for p in by_api.plugins] == [plugin.plugin_id]
    by_plugin = await sdk(c.list_plugin_attached_apis, ListPluginAttachedApisRequest(
        instance_id=I, plugin_id=plugin.plugin_id))
    assert [a.api_id for a in by_plugin.apis] == [api.id]
    await sdk(c.detach_plugin_from_api, DetachPluginFromApiRequest(
        instance_id=I, api_id=api.id, body=ApiOperPluginInfo(env_id=RELEASE, plugin_ids=[plugin.plugin_id])))
    await sdk(c.attach_api_to_plugin, AttachApiToPluginRequest(
        instance_id=I, plugin_id=plugin.plugin_id, body=PluginOperApiInfo(env_id=RELEASE, api_ids=[api.id])))
    await sdk(c.detach_api_from_plugin, DetachApiFromPluginRequest(
        instance_id=I, plugin_id=plugin.plugin_id, body=PluginOperApiInfo(env_id=RELEASE, api_ids=[api.id])))
    async with aiohttp.ClientSession() as s, s.options(gw.url + "/fn-guarded",
                                                       headers={"Host": host, **preflight}) as r:
        assert r.headers.get("Access-Control-Max-Age") is None  # detached
    renamed_plugin = PluginCreate(plugin_name="sdk_cors_b", plugin_type="cors", plugin_scope="global",
                                  plugin_content=content)
    updated = await sdk(c.update_plugin, UpdatePluginRequest(instance_id=I, plugin_id=plugin.plugin_id,
                                                             body=renamed_plugin))
    assert updated.plugin_name == "sdk_cors_b"
    assert (await sdk(c.show_plugin, ShowPluginRequest(instance_id=I, plugin_id=plugin.plugin_id))).plugin_name == \
        "sdk_cors_b"
    assert (await sdk(c.list_plugins, ListPluginsRequest(instance_id=I))).total == 1
    await sdk(c.delete_plugin, DeletePluginRequest(instance_id=I, plugin_id=plugin.plugin_id))

    # an app's own ACL, AppCode details, app update
    app = await sdk(c.create_an_app_v2, CreateAnAppV2Request(instance_id=I, body=AppCreate(name="sdk_app_acl")))
    acl = await sdk(c.update_app_acl, UpdateAppAclRequest(instance_id=I, app_id=app.id, body=AppAclCreate(
        app_acl_type="DENY", app_acl_values=["10.0.0.1"])))
    has(acl, "app_id", "app_acl_type", "app_acl_values")
    shown_acl = await sdk(c.show_details_of_app_acl, ShowDetailsOfAppAclRequest(instance_id=I, app_id=app.id))
    assert shown_acl.app_acl_values == ["10.0.0.1"]
    await sdk(c.delete_app_acl, DeleteAppAclRequest(instance_id=I, app_id=app.id))
    assert not gw.gw.document.get("app_acls")
    code = await sdk(c.create_app_code_auto_v2, CreateAppCodeAutoV2Request(instance_id=I, app_id=app.id))
    one = await sdk(c.show_details_of_app_code_v2, ShowDetailsOfAppCodeV2Request(instance_id=I, app_id=app.id,
                                                                                   app_code_id=code.id))
    has(one, "id", "app_id", "app_code", "create_time")
    renamed = await sdk(c.update_app_v2, UpdateAppV2Request(instance_id=I, app_id=app.id,
                                                            body=AppCreate(name="sdk_app_acl_b", remark="renamed")))
    assert renamed.name == "sdk_app_acl_b" and renamed.app_key == app.app_key

    # ACL policy details, update and a single unbind
    policy = await sdk(c.create_acl_strategy_v2, CreateAclStrategyV2Request(instance_id=I, body=ApiAclCreate(
        acl_name="sdk_acl_two", acl_type="PERMIT", acl_value="10.1.1.1", entity_type="IP")))
    bound = await sdk(c.create_api_acl_binding_v2, CreateApiAclBindingV2Request(
        instance_id=I, body=AclApiBindingCreate(acl_id=policy.id, publish_ids=[pub.publish_id])))
    assert (await served(gw.url, "/fn-guarded", host, Authorization="Bearer another-secret"))[0] == 403
    await sdk(c.update_acl_strategy_v2, UpdateAclStrategyV2Request(instance_id=I, acl_id=policy.id, body=ApiAclCreate(
        acl_name="sdk_acl_two", acl_type="PERMIT", acl_value="127.0.0.1", entity_type="IP")))
    assert (await served(gw.url, "/fn-guarded", host, Authorization="Bearer another-secret"))[0] == 200
    shown_policy = await sdk(c.show_details_of_acl_policy_v2, ShowDetailsOfAclPolicyV2Request(instance_id=I,
                                                                                               acl_id=policy.id))
    assert shown_policy.acl_value == "127.0.0.1"
    await sdk(c.delete_api_acl_binding_v2, DeleteApiAclBindingV2Request(
        instance_id=I, acl_bindings_id=bound.acl_bindings[0].id))

    # gateway response details and update: the custom body is served
    resp = await sdk(c.create_gateway_response_v2, CreateGatewayResponseV2Request(
        instance_id=I, group_id=g.id, body=ResponsesCreate(name="sdk_resp", responses={})))
    await sdk(c.update_gateway_response_v2, UpdateGatewayResponseV2Request(
        instance_id=I, group_id=g.id, response_id=resp.id, body=ResponsesCreate(name="sdk_resp", responses={
            "AUTHORIZER_FAILURE": {"status": 401, "body": '{"sdk_says":"no"}'}})))
    one_resp = await sdk(c.show_details_of_gateway_response_v2, ShowDetailsOfGatewayResponseV2Request(
        instance_id=I, group_id=g.id, response_id=resp.id))
    has(one_resp, "id", "name", "responses")
    await sdk(c.update_api_v2, UpdateApiV2Request(instance_id=I, api_id=api.id, body=_mock_api(
        g.id, "sdk_guarded_fn", "/fn-guarded", "behind the authorizer", auth_type="AUTHORIZER",
        authorizer_id=authz.id, response_id=resp.id)))
    await _publish(c, api.id)
    assert await served(gw.url, "/fn-guarded", host, Authorization="Bearer nope") == (401, '{"sdk_says":"no"}')

    # signature key update, env variable details, VPC channel details / update / members
    sign = await sdk(c.create_signature_key_v2, CreateSignatureKeyV2Request(instance_id=I, body=BaseSignature(
        name="sdk_sign_two", sign_type="hmac")))
    sign2 = await sdk(c.update_signature_key_v2, UpdateSignatureKeyV2Request(instance_id=I, sign_id=sign.id,
                                                                             body=BaseSignature(name="sdk_sign_three",
                                                                                                sign_type="hmac")))
    assert sign2.name == "sdk_sign_three" and sign2.sign_key == sign.sign_key
    env = await sdk(c.create_environment_v2, CreateEnvironmentV2Request(instance_id=I, body=EnvCreate(name="SDK_VARS")))
    var = await sdk(c.create_environment_variable_v2, CreateEnvironmentVariableV2Request(
        instance_id=I, body=EnvVariableCreate(group_id=g.id, env_id=env.id, variable_name="var_one",
                                              variable_value="x")))
    var_shown = await sdk(c.show_details_of_environment_variable_v2, ShowDetailsOfEnvironmentVariableV2Request(
        instance_id=I, env_variable_id=var.id))
    assert var_shown.variable_value == "x"
    host_ip, port = address.split(":")
    chan = await sdk(c.create_vpc_channel_v2, CreateVpcChannelV2Request(instance_id=I, body=VpcCreate(
        name="sdk_chan_two", type=2, port=int(port), balance_strategy=1, member_type="ip",
        members=[MemberInfo(host=host_ip, weight=1)])))
    chan_shown = await sdk(c.show_details_of_vpc_channel_v2, ShowDetailsOfVpcChannelV2Request(instance_id=I,
                                                                                               vpc_channel_id=chan.id))
    has(chan_shown, "id", "name", "port", "status", "create_time")
    await sdk(c.update_vpc_channel_v2, UpdateVpcChannelV2Request(instance_id=I, vpc_channel_id=chan.id, body=VpcCreate(
        name="sdk_chan_two_b", type=2, port=int(port), balance_strategy=1, member_type="ip")))
    members = await sdk(c.update_backend_instances_v2, UpdateBackendInstancesV2Request(
        instance_id=I, vpc_channel_id=chan.id, body=VpcMemberModify(members=[MemberInfo(host=host_ip, weight=5)])))
    assert [m.weight for m in members.members] == [5]
    await sdk(c.delete_backend_instance_v2, DeleteBackendInstanceV2Request(instance_id=I, vpc_channel_id=chan.id,
                                                                         member_id=members.members[0].id))
    assert gw.gw.document["vpc_channels"][0]["members"] == []
    # still used by the API: deleting the authorizer is refused by validation
    err = await sdk_error(c.delete_custom_authorizer_v2, DeleteCustomAuthorizerV2Request(instance_id=I,
                                                                                        authorizer_id=authz.id))
    assert err.status_code == 400 and err.error_code == "APIG.2012"
    await sdk(c.delete_api_v2, DeleteApiV2Request(instance_id=I, api_id=api.id))
    await sdk(c.delete_custom_authorizer_v2, DeleteCustomAuthorizerV2Request(instance_id=I, authorizer_id=authz.id))
    await sdk(c.delete_gateway_response_v2, DeleteGatewayResponseV2Request(instance_id=I, group_id=g.id,
                                                                          response_id=resp.id))
    assert not gw.gw.document.get("responses") and not gw.gw.document.get("authorizers")


async def test_import_and_export_through_the_sdk(setup: Any, tmp_path: Any) -> None:
    gw, c = setup
    spec = {"swagger": "2.0", "info": {"title": "sdk_imported", "version": "1"}, "paths": {"/imported": {"get": {
        "operationId": "imported_api", "x-apigateway-backend": {"type": "MOCK",
                                                                "mockEndpoints": {"result-content": "imported"}}}}}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(spec))
    with open(path, "rb") as f:
        body = ImportApiDefinitionsV2RequestBody(file_name=FormFile(f, "application/json"), is_create_group=True)
        result = await sdk(c.import_api_definitions_v2, ImportApiDefinitionsV2Request(instance_id=I, body=body))
    has(result, "group_id", "success")
    assert [(s.path, s.method, s.action) for s in result.success] == [("/imported", "GET", "create")]
    await _publish(c, result.success[0].id)
    group = await sdk(c.show_details_of_api_group_v2, ShowDetailsOfApiGroupV2Request(instance_id=I,
                                                                                     group_id=result.group_id))
    assert await served(gw.url, "/imported", group.sl_domain) == (200, "imported")
    exported = await sdk(c.export_api_definitions_v2, ExportApiDefinitionsV2Request(
        instance_id=I, body=ExportOpenApiReq(env_id=RELEASE, group_id=result.group_id, define="proxy")))
    chunks: list[bytes] = []
    exported.consume_download_stream(lambda stream: chunks.extend(stream.iter_content(1024)))
    definition = json.loads(b"".join(chunks))
    assert definition["paths"]["/imported"]["get"]["x-apigateway-backend"]["mockEndpoints"] == {
        "result-content": "imported"}


async def test_signed_admin_calls_unsigned_payload_only_once_and_never_for_json(setup: Any) -> None:
    gw, _ = setup
    url = gw.admin_url + "/v2/p/apigw/instances/i/apis?limit=1"
    async with aiohttp.ClientSession() as s:
        signed = sdk_signer.sign_request("ak", TOKEN, "GET", url, {"Content-Type": "multipart/form-data; boundary=x",
                                                                   "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
        statuses = []
        for _ in range(2):  # the same signature again is a replay
            async with s.get(url, headers=signed) as r:
                statuses.append(r.status)
        assert statuses == [200, 401]
        signed = sdk_signer.sign_request("ak", TOKEN, "GET", url, {"Content-Type": "application/json",
                                                                   "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
        async with s.get(url, headers=signed) as r:
            assert r.status == 401
        signed = sdk_signer.sign_request("ak", TOKEN, "POST", url, {"Content-Type": "application/json"}, b"{}")
        async with s.post(url, headers=signed, data=b'{"tampered": 1}') as r:
            assert r.status == 401  # the body is part of the signature
        stale = sdk_signer.sign_request("ak", TOKEN, "GET", url, date="20200101T000000Z")
        async with s.get(url, headers=stale) as r:
            assert r.status == 401


async def test_queries_checks_counts_and_response_types(setup: Any) -> None:
    gw, c = setup
    g = await _group(c, "sdk_queries")
    api = await _api(c, g, "sdk_query_api", "/query", "q", auth_type="APP")
    pub = await _publish(c, api.id)
    throttle = await sdk(c.create_request_throttling_policy_v2, CreateRequestThrottlingPolicyV2Request(
        instance_id=I, body=ThrottleBaseInfo(name="sdk_q_throttle", api_call_limits=10, time_interval=1,
                                             time_unit="MINUTE")))
    free = await sdk(c.list_apis_unbinded_to_request_throttling_policy_v2,
                     ListApisUnbindedToRequestThrottlingPolicyV2Request(instance_id=I, throttle_id=throttle.id))
    assert [a.id for a in free.apis] == [api.id]
    has(free.apis[0], "id", "name", "group_name", "publish_id", "run_env_id", "run_env_name", "req_uri")
    await sdk(c.associate_request_throttling_policy_v2, AssociateRequestThrottlingPolicyV2Request(
        instance_id=I, body=ThrottleApiBindingCreate(strategy_id=throttle.id, publish_ids=[pub.publish_id])))
    free = await sdk(c.list_apis_unbinded_to_request_throttling_policy_v2,
                     ListApisUnbindedToRequestThrottlingPolicyV2Request(instance_id=I, throttle_id=throttle.id))
    assert free.total == 0
    acl = await sdk(c.create_acl_strategy_v2, CreateAclStrategyV2Request(instance_id=I, body=ApiAclCreate(
        acl_name="sdk_q_acl", acl_type="PERMIT", acl_value="127.0.0.1", entity_type="IP")))
    free_acl = await sdk(c.list_apis_unbinded_to_acl_policy_v2, ListApisUnbindedToAclPolicyV2Request(
        instance_id=I, acl_id=acl.id))
    assert [a.id for a in free_acl.apis] == [api.id]
    sign = await sdk(c.create_signature_key_v2, CreateSignatureKeyV2Request(instance_id=I, body=BaseSignature(
        name="sdk_q_sign", sign_type="hmac")))
    free_sign = await sdk(c.list_apis_not_bound_with_signature_key_v2, ListApisNotBoundWithSignatureKeyV2Request(
        instance_id=I, sign_id=sign.id))
    assert [a.id for a in free_sign.apis] == [api.id]
    app = await sdk(c.create_an_app_v2, CreateAnAppV2Request(instance_id=I, body=AppCreate(name="sdk_q_app")))
    free_app = await sdk(c.list_apis_unbinded_to_app_v2, ListApisUnbindedToAppV2Request(
        instance_id=I, app_id=app.id, env_id=RELEASE))
    assert [a.id for a in free_app.apis] == [api.id]
    checked = await sdk(c.check_app_v2, CheckAppV2Request(instance_id=I, app_id=app.id))
    assert (checked.id, checked.name) == (app.id, "sdk_q_app")
    plugin = await sdk(c.create_plugin, CreatePluginRequest(instance_id=I, body=PluginCreate(
        plugin_name="sdk_q_cors", plugin_type="cors", plugin_scope="global", plugin_content="{}")))
    can_attach = await sdk(c.list_plugin_attachable_apis, ListPluginAttachableApisRequest(
        instance_id=I, plugin_id=plugin.plugin_id, env_id=RELEASE))
    assert [a.api_id for a in can_attach.apis] == [api.id]
    attachable = await sdk(c.list_api_attachable_plugins, ListApiAttachablePluginsRequest(
        instance_id=I, api_id=api.id, env_id=RELEASE))
    assert [p.plugin_id for p in attachable.plugins] == [plugin.plugin_id]

    # name and route checks answer before anything is created
    await sdk(c.check_api_groups_v2, CheckApiGroupsV2Request(instance_id=I, body=ApiGroupCheck(group_name="unused")))
    err = await sdk_error(c.check_api_groups_v2, CheckApiGroupsV2Request(instance_id=I, body=ApiGroupCheck(
        group_name="sdk_queries")))
    assert (err.status_code, err.error_code) == (400, "APIG.3201")
    await sdk(c.check_apis_v2, CheckApisV2Request(instance_id=I, body=ApiCheckInfoV2(
        type="path", req_method="GET", req_uri="/elsewhere", group_id=g.id)))
    err = await sdk_error(c.check_apis_v2, CheckApisV2Request(instance_id=I, body=ApiCheckInfoV2(
        type="path", req_method="GET", req_uri="/query", match_mode="NORMAL", group_id=g.id)))
    assert err.error_code == "APIG.3301"
    err = await sdk_error(c.check_apis_v2, CheckApisV2Request(instance_id=I, body=ApiCheckInfoV2(
        type="name", name="sdk_query_api", group_id=g.id)))
    assert err.error_code == "APIG.3202"

    counts = await sdk(c.list_api_quantities_v2, ListApiQuantitiesV2Request(instance_id=I))
    assert (counts.instance_num, counts.nums_on_release, counts.nums_off_release) == (1, 1, 0)
    app_counts = await sdk(c.list_app_quantities_v2, ListAppQuantitiesV2Request(instance_id=I))
    assert (app_counts.authed_nums, app_counts.unauthed_nums) == (0, 1)
    groups = await sdk(c.list_api_groups_quantities_v2, ListApiGroupsQuantitiesV2Request(instance_id=I))
    assert (groups.onsell_nums, groups.offsell_nums) == (0, 1)

    # one response type of a gateway response, served when the API uses that response
    resp = await sdk(c.create_gateway_response_v2, CreateGatewayResponseV2Request(
        instance_id=I, group_id=g.id, body=ResponsesCreate(name="sdk_q_resp", responses={})))
    shown = await sdk(c.show_details_of_gateway_response_type_v2, ShowDetailsOfGatewayResponseTypeV2Request(
        instance_id=I, group_id=g.id, response_id=resp.id, response_type="AUTH_HEADER_MISSING"))
    assert shown.body["AUTH_HEADER_MISSING"].default is True
    changed = await sdk(c.update_gateway_response_type_v2, UpdateGatewayResponseTypeV2Request(
        instance_id=I, group_id=g.id, response_id=resp.id, response_type="AUTH_HEADER_MISSING",
        body=ResponseInfo(status=418, body='{"sdk":"who are you"}')))
    assert changed.body["AUTH_HEADER_MISSING"].status == 418
    await sdk(c.update_api_v2, UpdateApiV2Request(instance_id=I, api_id=api.id, body=_mock_api(
        g.id, "sdk_query_api", "/query", "q", auth_type="APP", response_id=resp.id)))
    await _publish(c, api.id)
    assert await served(gw.url, "/query", g.sl_domain) == (418, '{"sdk":"who are you"}')
    await sdk(c.delete_gateway_response_type_v2, DeleteGatewayResponseTypeV2Request(
        instance_id=I, group_id=g.id, response_id=resp.id, response_type="AUTH_HEADER_MISSING"))
    assert (await served(gw.url, "/query", g.sl_domain))[0] == 401  # the built-in answer again


async def test_credential_quotas(setup: Any) -> None:
    gw, c = setup
    g = await _group(c, "sdk_quota")
    api = await _api(c, g, "sdk_quota_api", "/quota", "counted", auth_type="APP",
                     auth_opt={"app_code_auth_type": "HEADER"})
    await _publish(c, api.id)
    app = await sdk(c.create_an_app_v2, CreateAnAppV2Request(instance_id=I, body=AppCreate(name="sdk_quota_app")))
    await sdk(c.create_app_code_v2, CreateAppCodeV2Request(instance_id=I, app_id=app.id,
                                                           body=AppCodeCreate(app_code="Q" * 64)))
    await sdk(c.create_authorizing_apps_v2, CreateAuthorizingAppsV2Request(
        instance_id=I, body=ApiAuthCreate(env_id=RELEASE, app_ids=[app.id], api_ids=[api.id])))
    body = AppQuotaCreate(name="sdk_two_calls", call_limits=2, time_unit="MINUTE", time_interval=1,
                          remark="two a minute")
    quota = await sdk(c.create_app_quota, CreateAppQuotaRequest(instance_id=I, body=body))
    has(quota, "app_quota_id", "name", "call_limits", "time_unit", "time_interval", "create_time", "bound_app_num")
    bindable = await sdk(c.list_app_quota_bindable_apps, ListAppQuotaBindableAppsRequest(
        instance_id=I, app_quota_id=quota.app_quota_id))
    assert [a.app_id for a in bindable.apps] == [app.id]
    bound = await sdk(c.associate_apps_for_app_quota, AssociateAppsForAppQuotaRequest(
        instance_id=I, app_quota_id=quota.app_quota_id, body=CreateAppQuotaBindingApp(app_ids=[app.id])))
    has(bound.applies[0], "app_quota_id", "app_id", "bound_time")
    code = {"X-Apig-AppCode": "Q" * 64}
    assert [(await served(gw.url, "/quota", g.sl_domain, **code))[0] for _ in range(3)] == [200, 200, 429]
    apps = await sdk(c.list_app_quota_bound_apps, ListAppQuotaBoundAppsRequest(instance_id=I,
                                                                              app_quota_id=quota.app_quota_id))
    has(apps.apps[0], "app_id", "name", "app_quota_id", "app_quota_name")
    mine = await sdk(c.show_app_bound_app_quota, ShowAppBoundAppQuotaRequest(instance_id=I, app_id=app.id))
    assert (mine.app_quota_id, mine.bound_app_num) == (quota.app_quota_id, 1)
    body.call_limits = 100
    await sdk(c.update_app_quota, UpdateAppQuotaRequest(instance_id=I, app_quota_id=quota.app_quota_id, body=body))
    assert (await served(gw.url, "/quota", g.sl_domain, **code))[0] == 200
    shown = await sdk(c.show_app_quota, ShowAppQuotaRequest(instance_id=I, app_quota_id=quota.app_quota_id))
    assert shown.call_limits == 100
    listed = await sdk(c.list_app_quotas, ListAppQuotasRequest(instance_id=I))
    assert [q.app_quota_id for q in listed.quotas] == [quota.app_quota_id]
    await sdk(c.disassociate_app_quota_with_app, DisassociateAppQuotaWithAppRequest(
        instance_id=I, app_quota_id=quota.app_quota_id, app_id=app.id))
    assert not gw.gw.document.get("quota_bindings")
    await sdk(c.delete_app_quota, DeleteAppQuotaRequest(instance_id=I, app_quota_id=quota.app_quota_id))
    assert not gw.gw.document.get("quotas")


async def test_instance_features_and_channel_member_switches(setup: Any, echo_backend: Any) -> None:
    gw, c = setup
    backend, address = echo_backend
    instance = await sdk(c.show_details_of_instance_v2, ShowDetailsOfInstanceV2Request(instance_id=I))
    has(instance, "id", "instance_name", "status", "create_time")
    assert instance.id == I and instance.status == "Running"
    g = await _group(c, "sdk_instance")
    api = await _api(c, g, "sdk_ip_guarded", "/ip", "by ip")
    pub = await _publish(c, api.id)
    acl = await sdk(c.create_acl_strategy_v2, CreateAclStrategyV2Request(instance_id=I, body=ApiAclCreate(
        acl_name="sdk_deny_far", acl_type="DENY", acl_value="203.0.113.9", entity_type="IP")))
    await sdk(c.create_api_acl_binding_v2, CreateApiAclBindingV2Request(
        instance_id=I, body=AclApiBindingCreate(acl_id=acl.id, publish_ids=[pub.publish_id])))
    caller = {"X-Client-Ip": "203.0.113.9"}
    assert (await served(gw.url, "/ip", g.sl_domain, **caller))[0] == 200  # the header is not trusted yet
    feature = await sdk(c.create_feature_v2, CreateFeatureV2Request(instance_id=I, body=FeatureToggle(
        name="real_ip_header_getter", enable=True, config='{"header_getter": "header:X-Client-Ip"}')))
    has(feature, "id", "name", "enable", "config", "update_time")
    assert (await served(gw.url, "/ip", g.sl_domain, **caller))[0] == 403  # now the client IP comes from it
    features = await sdk(c.list_features_v2, ListFeaturesV2Request(instance_id=I))
    assert [(f.name, f.enable) for f in features.features] == [("real_ip_header_getter", True)]
    await sdk(c.create_feature_v2, CreateFeatureV2Request(instance_id=I, body=FeatureToggle(
        name="real_ip_header_getter", enable=False, config='{"header_getter": "header:X-Client-Ip"}')))
    assert (await served(gw.url, "/ip", g.sl_domain, **caller))[0] == 200
    assert len(gw.gw.document["features"]) == 1  # one record per name

    host, port = address.split(":")
    chan = await sdk(c.create_vpc_channel_v2, CreateVpcChannelV2Request(instance_id=I, body=VpcCreate(
        name="sdk_switch_chan", type=2, port=int(port), balance_strategy=1, member_type="ip",
        members=[MemberInfo(host=host, weight=1)])))
    via = ApiCreate(group_id=g.id, name="sdk_switch_api", type=1, req_protocol="HTTP", req_method="GET",
                    req_uri="/switch", auth_type="NONE", backend_type="HTTP", match_mode="NORMAL",
                    backend_api={"req_protocol": "HTTP", "req_method": "GET", "req_uri": "/echo", "timeout": 5000,
                                 "vpc_channel_status": 1, "vpc_channel_info": {"vpc_channel_id": chan.id}})
    via_api = await sdk(c.create_api_v2, CreateApiV2Request(instance_id=I, body=via))
    await _publish(c, via_api.id)
    assert (await served(gw.url, "/switch", g.sl_domain))[0] == 200
    member_id = gw.gw.document["vpc_channels"][0]["members"][0]["id"]
    await sdk(c.batch_disable_members, BatchDisableMembersRequest(
        instance_id=I, vpc_channel_id=chan.id, body=MembersBatchEnableOrDisable(member_ids=[member_id])))
    assert (await served(gw.url, "/switch", g.sl_domain))[0] >= 500  # no member left to choose
    await sdk(c.batch_enable_members, BatchEnableMembersRequest(
        instance_id=I, vpc_channel_id=chan.id, body=MembersBatchEnableOrDisable(member_ids=[member_id])))
    assert (await served(gw.url, "/switch", g.sl_domain))[0] == 200
    hits = backend.hits
    check = await sdk(c.update_health_check, UpdateHealthCheckRequest(instance_id=I, vpc_channel_id=chan.id, body=(
        VpcHealthConfig(protocol="HTTP", path="/health", method="GET", port=int(port), threshold_normal=1,
                        threshold_abnormal=1, time_interval=2, http_code="200", timeout=1))))
    has(check, "protocol", "path", "vpc_channel_id", "time_interval")
    assert gw.gw.document["vpc_channels"][0]["vpc_health_config"]["path"] == "/health"
    await wait_until(lambda: backend.hits > hits + 1)  # the active check reaches the member


async def test_debug_an_api_through_the_gateway(setup: Any) -> None:
    _, c = setup
    g = await _group(c, "sdk_debug")
    api = await _api(c, g, "sdk_debug_app", "/debug-me", "debugged", auth_type="APP")
    err = await sdk_error(c.debug_api_v2, DebugApiV2Request(instance_id=I, api_id=api.id, body=ApiDebugInfo(
        mode="DEVELOPER", scheme="HTTP", method="GET", path="/debug-me", stage="RELEASE")))
    assert (err.status_code, err.error_code) == (400, "APIG.3015")  # not published yet
    await _publish(c, api.id)
    app = await sdk(c.create_an_app_v2, CreateAnAppV2Request(instance_id=I, body=AppCreate(name="sdk_debug_caller")))
    await sdk(c.create_authorizing_apps_v2, CreateAuthorizingAppsV2Request(
        instance_id=I, body=ApiAuthCreate(env_id=RELEASE, app_ids=[app.id], api_ids=[api.id])))
    unsigned = await sdk(c.debug_api_v2, DebugApiV2Request(instance_id=I, api_id=api.id, body=ApiDebugInfo(
        mode="DEVELOPER", scheme="HTTP", method="GET", path="/debug-me", stage="RELEASE")))
    has(unsigned, "request", "response", "latency", "log")
    assert unsigned.response.startswith("HTTP/1.1 401")
    signed = await sdk(c.debug_api_v2, DebugApiV2Request(instance_id=I, api_id=api.id, body=ApiDebugInfo(
        mode="DEVELOPER", scheme="HTTP", method="GET", path="/debug-me", stage="RELEASE",
        query={"a": ["1"]}, header={"X-Trace": ["t1"]}, app_key=app.app_key, app_secret=app.app_secret)))
    assert signed.response.startswith("HTTP/1.1 200") and signed.response.endswith("debugged"), signed.response
    assert "GET /debug-me?a=1 HTTP/1.1" in signed.request and "SDK-HMAC-SHA256" in signed.request
    assert app.app_secret not in signed.request + signed.response + signed.log


async def test_vpc_channel_member_groups(setup: Any, echo_backend: Any) -> None:
    gw, c = setup
    backend, address = echo_backend
    host, port = address.split(":")
    g = await _group(c, "sdk_member_groups")
    chan = await sdk(c.create_vpc_channel_v2, CreateVpcChannelV2Request(instance_id=I, body=VpcCreate(
        name="sdk_grouped_chan", type=2, port=int(port), balance_strategy=1, member_type="ip",
        members=[MemberInfo(host=host, weight=1)])))
    made = await sdk(c.create_member_group, CreateMemberGroupRequest(
        instance_id=I, vpc_channel_id=chan.id, body=MemberGroupCreateBatch(member_groups=[
            MemberGroupCreate(member_group_name="blue_pool", member_group_weight=10, member_group_remark="b")])))
    group_id = made.member_groups[0].member_group_id
    has(made.member_groups[0], "member_group_id", "member_group_name", "member_group_weight", "create_time")
    listed = await sdk(c.list_member_groups, ListMemberGroupsRequest(instance_id=I, vpc_channel_id=chan.id))
    assert [x.member_group_name for x in listed.member_groups] == ["blue_pool"]
    await sdk(c.update_member_group, UpdateMemberGroupRequest(
        instance_id=I, vpc_channel_id=chan.id, member_group_id=group_id,
        body=MemberGroupCreate(member_group_name="blue_pool", member_group_weight=20)))
    shown = await sdk(c.show_details_of_member_group, ShowDetailsOfMemberGroupRequest(
        instance_id=I, vpc_channel_id=chan.id, member_group_id=group_id))
    assert shown.member_group_weight == 20
    await sdk(c.update_backend_instances_v2, UpdateBackendInstancesV2Request(
        instance_id=I, vpc_channel_id=chan.id,
        body=VpcMemberModify(members=[MemberInfo(host=host, weight=1, member_group_name="blue_pool")])))
    via = ApiCreate(group_id=g.id, name="sdk_grouped_api", type=1, req_protocol="HTTP", req_method="GET",
                    req_uri="/grouped", auth_type="NONE", backend_type="HTTP", match_mode="NORMAL",
                    backend_api={"req_protocol": "HTTP", "req_method": "GET", "req_uri": "/echo", "timeout": 5000,
                                 "vpc_channel_status": 1, "vpc_channel_info": {"vpc_channel_id": chan.id}})
    api = await sdk(c.create_api_v2, CreateApiV2Request(instance_id=I, body=via))
    await _publish(c, api.id)
    hits = backend.hits
    assert (await served(gw.url, "/grouped", g.sl_domain))[0] == 200 and backend.hits == hits + 1
    err = await sdk_error(c.delete_member_group, DeleteMemberGroupRequest(
        instance_id=I, vpc_channel_id=chan.id, member_group_id=group_id))
    assert err.status_code == 400 and "unknown member group" in err.error_msg  # still named by a member
    await sdk(c.update_backend_instances_v2, UpdateBackendInstancesV2Request(
        instance_id=I, vpc_channel_id=chan.id, body=VpcMemberModify(members=[MemberInfo(host=host, weight=1)])))
    await sdk(c.delete_member_group, DeleteMemberGroupRequest(instance_id=I, vpc_channel_id=chan.id,
                                                              member_group_id=group_id))
    assert gw.gw.document["vpc_channels"][0]["member_groups"] == []


async def test_asynchronous_import_and_export_tasks(setup: Any, tmp_path: Any) -> None:
    gw, c = setup
    spec = {"swagger": "2.0", "info": {"title": "sdk_async", "version": "1"}, "paths": {"/async": {"get": {
        "operationId": "async_api", "x-apigateway-backend": {"type": "MOCK",
                                                             "mockEndpoints": {"result-content": "async"}}}}}}
    path = tmp_path / "async.json"
    path.write_text(json.dumps(spec))
    with open(path, "rb") as f:
        body = ImportApiDefinitionsAsyncRequestBody(file_name=FormFile(f, "application/json"))
        task = await sdk(c.import_api_definitions_async, ImportApiDefinitionsAsyncRequest(instance_id=I, body=body))
    result = await sdk(c.show_async_task_result, ShowAsyncTaskResultRequest(instance_id=I, task_id=task.task_id))
    has(result, "task_id", "task_status", "task_type", "task_result")
    assert (result.task_status, result.task_type) == ("succeed", "import_api")
    imported = json.loads(result.task_result)
    api_id = imported["success"][0]["id"]
    await _publish(c, api_id)
    group = await sdk(c.show_details_of_api_group_v2, ShowDetailsOfApiGroupV2Request(instance_id=I,
                                                                                     group_id=imported["group_id"]))
    assert await served(gw.url, "/async", group.sl_domain) == (200, "async")
    task = await sdk(c.export_api_definitions_async, ExportApiDefinitionsAsyncRequest(
        instance_id=I, body=ExportOpenApiReq(env_id=RELEASE, group_id=imported["group_id"], define="all")))
    result = await sdk(c.show_async_task_result, ShowAsyncTaskResultRequest(instance_id=I, task_id=task.task_id))
    exported = json.loads(result.task_result)
    assert exported["file_type"] == "json" and "/async" in json.loads(exported["content"])["paths"]
    err = await sdk_error(c.show_async_task_result, ShowAsyncTaskResultRequest(instance_id=I, task_id="f" * 32))
    assert err.status_code == 404


async def test_domain_certificates_served_by_sni(make_gateway: Any, tmp_path: Any) -> None:
    ca = TestCA()
    default_cert, default_key = ca.issue("default.gw", dns=["default.gw"]).write(str(tmp_path), "default")
    gw = await make_gateway({}, admin_token=TOKEN, admin_token_required=True, https_listen="127.0.0.1:0",
                            tls_cert_file=default_cert, tls_key_file=default_key)
    c = sdk_client(gw.admin_url)
    g = await _group(c, "sdk_tls")
    api = await _api(c, g, "sdk_tls_api", "/tls", "over tls")
    await _publish(c, api.id)
    dom = await sdk(c.associate_domain_v2, AssociateDomainV2Request(instance_id=I, group_id=g.id, body=UrlDomainCreate(
        url_domain="sdk.example")))
    issued = ca.issue("sdk.example", dns=["sdk.example"])
    attached = await sdk(c.associate_certificate_v2, AssociateCertificateV2Request(
        instance_id=I, group_id=g.id, domain_id=dom.id, body=CertForm(name="sdk_cert", cert_content=issued.cert_pem,
                                                                       private_key=issued.key_pem)))
    has(attached, "id", "url_domain", "ssl_id", "ssl_name", "api_group_id")
    assert await _sni_common_name(gw.gw.https_port, "sdk.example", ca) == "sdk.example"
    cert = await sdk(c.show_details_of_domain_name_certificate_v2, ShowDetailsOfDomainNameCertificateV2Request(
        instance_id=I, group_id=g.id, domain_id=dom.id, certificate_id=attached.ssl_id))
    has(cert, "id", "name", "common_name", "san", "not_before", "not_after", "serial_number", "issuer")
    assert (cert.common_name, cert.san) == ("sdk.example", ["sdk.example"])
    group = await sdk(c.show_details_of_api_group_v2, ShowDetailsOfApiGroupV2Request(instance_id=I, group_id=g.id))
    assert "PRIVATE KEY" not in json.dumps(group.to_json_object(), default=str)  # the key is never answered
    await sdk(c.disassociate_certificate_v2, DisassociateCertificateV2Request(
        instance_id=I, group_id=g.id, domain_id=dom.id, certificate_id=attached.ssl_id))
    assert await _sni_common_name(gw.gw.https_port, "sdk.example", ca, check_hostname=False) == "default.gw"


async def _sni_common_name(port: int, sni: str, ca: Any, check_hostname: bool = True) -> str:
    ctx = ssl.create_default_context(cadata=ca.pem)
    ctx.check_hostname = check_hostname
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    peer = writer.get_extra_info("peercert")
    writer.close()
    return str(dict(x[0] for x in peer["subject"])["commonName"])


async def test_certificate_store_attached_to_domains(make_gateway: Any, tmp_path: Any) -> None:
    ca = TestCA()
    default_cert, default_key = ca.issue("default.gw", dns=["default.gw"]).write(str(tmp_path), "default")
    gw = await make_gateway({}, admin_token=TOKEN, admin_token_required=True, https_listen="127.0.0.1:0",
                            tls_cert_file=default_cert, tls_key_file=default_key)
    c = sdk_client(gw.admin_url)
    g = await _group(c, "sdk_cert_store")
    dom = await sdk(c.associate_domain_v2, AssociateDomainV2Request(instance_id=I, group_id=g.id, body=UrlDomainCreate(
        url_domain="store.example")))
    first = ca.issue("store.example", dns=["store.example"])
    form = CertificateForm(name="sdk_store_cert", cert_content=first.cert_pem, private_key=first.key_pem)
    cert = await sdk(c.create_certificate_v2, CreateCertificateV2Request(body=form))
    has(cert, "id", "name", "common_name", "san", "not_after", "create_time", "signature_algorithm")
    wrong = ca.issue("other.example", dns=["other.example"])
    err = await sdk_error(c.create_certificate_v2, CreateCertificateV2Request(body=CertificateForm(
        name="sdk_mismatch", cert_content=first.cert_pem, private_key=wrong.key_pem)))
    assert err.status_code == 400 and "does not match" in err.error_msg
    await sdk(c.batch_associate_domains_v2, BatchAssociateDomainsV2Request(
        certificate_id=cert.id, body=AttachOrDetachDomainsReqBody(domains=[AttachOrDetachDomainInfo(
            domain="store.example")])))
    assert await _sni_common_name(gw.gw.https_port, "store.example", ca) == "store.example"
    bound = await sdk(c.list_attached_domains_v2, ListAttachedDomainsV2Request(certificate_id=cert.id))
    has(bound.bound_domains[0], "id", "url_domain", "ssl_id", "api_group_id", "api_group_name")
    assert [d.url_domain for d in bound.bound_domains] == ["store.example"]
    err = await sdk_error(c.delete_certificate_v2, DeleteCertificateV2Request(certificate_id=cert.id))
    assert err.status_code == 400  # still attached
    # renewing the certificate renews it on every domain it is attached to
    renewed = ca.issue("store.example", dns=["store.example", "www.store.example"])
    await sdk(c.update_certificate_v2, UpdateCertificateV2Request(certificate_id=cert.id, body=CertificateForm(
        name="sdk_store_cert", cert_content=renewed.cert_pem, private_key=renewed.key_pem)))
    shown = await sdk(c.show_details_of_certificate_v2, ShowDetailsOfCertificateV2Request(certificate_id=cert.id))
    assert shown.san == ["store.example", "www.store.example"]
    assert gw.gw.document["groups"][0]["url_domains"][0]["certificate"] == renewed.cert_pem
    await sdk(c.batch_disassociate_domains_v2, BatchDisassociateDomainsV2Request(
        certificate_id=cert.id, body=AttachOrDetachDomainsReqBody(domains=[AttachOrDetachDomainInfo(
            domain="store.example")])))
    assert await _sni_common_name(gw.gw.https_port, "store.example", ca, check_hostname=False) == "default.gw"
    # the same from the domain's side
    await sdk(c.batch_associate_certs_v2, BatchAssociateCertsV2Request(
        instance_id=I, group_id=g.id, domain_id=dom.id, body=AttachOrDetachCertsReqBody(certificate_ids=[cert.id])))
    assert await _sni_common_name(gw.gw.https_port, "store.example", ca) == "store.example"
    await sdk(c.batch_disassociate_certs_v2, BatchDisassociateCertsV2Request(
        instance_id=I, group_id=g.id, domain_id=dom.id, body=AttachOrDetachCertsReqBody(certificate_ids=[cert.id])))
    listed = await sdk(c.list_certificates_v2, ListCertificatesV2Request())
    assert [x.id for x in listed.certs] == [cert.id]
    await sdk(c.delete_certificate_v2, DeleteCertificateV2Request(certificate_id=cert.id))
    assert not gw.gw.document.get("certificates")
    assert "certificate" not in gw.gw.document["groups"][0]["url_domains"][0]  # detached everywhere
