"""The v2 route table: every vendor management path this gateway implements, and where it is handled.

Role: control plane, off the request path. Special actions first (their paths would otherwise match a
generic ``{id}``), then the bindings, then the generic CRUD of every resource. Every handler is wrapped
so that an :class:`~gateway.control.common.AdminError` becomes the vendor's error body.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from gateway.control.common import AdminError
from gateway.control.store import DocumentStore
from gateway.control.v2 import (
    PREFIX,
    apps,
    bindings,
    certificates,
    channels,
    crud,
    debug,
    domains,
    instance,
    member_groups,
    plugins,
    publish,
    queries,
    quotas,
    responses,
)
from gateway.control.v2.crud import Handler, Route
from gateway.control.v2.resources import BINDINGS, RESOURCES


def wrap(fn: Handler) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except AdminError as err:
            return err.response()

    return handler


CERTS = "/v2/{project_id}/apigw/certificates"  # project level, not below an instance


def routes(store: DocumentStore) -> list[Route]:
    p = PREFIX
    s = store
    table: list[Route] = [
        ("POST", f"{p}/apis/action", partial(publish.api_action, s)),
        ("POST", f"{p}/apis/publish", partial(publish.api_publish_batch, s)),
        ("GET", f"{p}/apis/publish/{{api_id}}", partial(publish.api_publish_history, s)),
        ("PUT", f"{p}/apis/publish/{{api_id}}", partial(publish.api_version_switch, s)),
        ("GET", f"{p}/apis/versions/{{version_id}}", partial(publish.api_version_detail, s)),
        ("DELETE", f"{p}/apis/versions/{{version_id}}", partial(publish.api_version_offline, s)),
        ("GET", f"{p}/apis/runtime/{{api_id}}", partial(publish.api_runtime, s)),
        ("POST", f"{p}/api-groups/{{group_id}}/domains", partial(domains.bind, s)),
        ("PUT", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}", partial(domains.update, s)),
        ("DELETE", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}", partial(domains.unbind, s)),
        ("PUT", f"{p}/api-groups/{{group_id}}/sl-domain-access-settings", partial(domains.sl_domain_access, s)),
        ("POST", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}/certificate",
         partial(domains.attach_certificate, s)),
        ("GET", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}/certificate/{{certificate_id}}",
         partial(domains.show_certificate, s)),
        ("DELETE", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}/certificate/{{certificate_id}}",
         partial(domains.detach_certificate, s)),
        ("POST", f"{p}/api-groups/check", partial(queries.check_group, s)),
        ("POST", f"{p}/apis/check", partial(queries.check_api, s)),
        ("GET", f"{p}/apps/validation/{{app_id}}", partial(queries.check_app, s)),
        ("GET", f"{p}/app-auths/unbinded-apis", partial(queries.apis_without_app, s)),
        ("GET", f"{p}/plugins/{{plugin_id}}/attachable-apis", partial(queries.attachable_apis, s)),
        ("GET", f"{p}/apis/{{api_id}}/attachable-plugins", partial(queries.attachable_plugins, s)),
        ("GET", f"{p}/resources/outline/apis", partial(queries.outline_apis, s)),
        ("GET", f"{p}/resources/outline/apps", partial(queries.outline_apps, s)),
        ("GET", f"{p}/resources/outline/groups", partial(queries.outline_groups, s)),
        ("GET", f"{p}/api-groups/{{group_id}}/gateway-responses/{{response_id}}/{{response_type}}",
         partial(responses.show, s)),
        ("PUT", f"{p}/api-groups/{{group_id}}/gateway-responses/{{response_id}}/{{response_type}}",
         partial(responses.update, s)),
        ("DELETE", f"{p}/api-groups/{{group_id}}/gateway-responses/{{response_id}}/{{response_type}}",
         partial(responses.delete, s)),
        ("GET", p, partial(instance.instance_details, s)),
        ("POST", f"{CERTS}", partial(certificates.create, s)),
        ("GET", f"{CERTS}", partial(certificates.list_, s)),
        ("GET", f"{CERTS}/{{certificate_id}}", partial(certificates.show, s)),
        ("PUT", f"{CERTS}/{{certificate_id}}", partial(certificates.update, s)),
        ("DELETE", f"{CERTS}/{{certificate_id}}", partial(certificates.delete, s)),
        ("POST", f"{CERTS}/{{certificate_id}}/domains/attach", partial(certificates.attach_domains, s)),
        ("POST", f"{CERTS}/{{certificate_id}}/domains/detach", partial(certificates.attach_domains, s)),
        ("GET", f"{CERTS}/{{certificate_id}}/attached-domains", partial(certificates.attached_domains, s)),
        ("POST", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}/certificates/attach",
         partial(certificates.domain_certs, s)),
        ("POST", f"{p}/api-groups/{{group_id}}/domains/{{domain_id}}/certificates/detach",
         partial(certificates.domain_certs, s)),
        ("POST", f"{p}/apis/debug/{{api_id}}", partial(debug.debug_api, s)),
        ("GET", f"{p}/features", partial(instance.features_list, s)),
        ("POST", f"{p}/features", partial(instance.feature_set, s)),
        ("POST", f"{p}/vpc-channels/{{vpc_channel_id}}/members/batch-enable", partial(instance.members_switch, s)),
        ("POST", f"{p}/vpc-channels/{{vpc_channel_id}}/members/batch-disable", partial(instance.members_switch, s)),
        ("PUT", f"{p}/vpc-channels/{{vpc_channel_id}}/health-config", partial(instance.health_config, s)),
        ("POST", f"{p}/vpc-channels/{{vpc_channel_id}}/member-groups", partial(member_groups.create, s)),
        ("GET", f"{p}/vpc-channels/{{vpc_channel_id}}/member-groups", partial(member_groups.list_, s)),
        ("GET", f"{p}/vpc-channels/{{vpc_channel_id}}/member-groups/{{member_group_id}}",
         partial(member_groups.show, s)),
        ("PUT", f"{p}/vpc-channels/{{vpc_channel_id}}/member-groups/{{member_group_id}}",
         partial(member_groups.update, s)),
        ("DELETE", f"{p}/vpc-channels/{{vpc_channel_id}}/member-groups/{{member_group_id}}",
         partial(member_groups.delete, s)),
        ("POST", f"{p}/app-quotas/{{app_quota_id}}/binding-apps", partial(quotas.bind_apps, s)),
        ("GET", f"{p}/app-quotas/{{app_quota_id}}/bound-apps", partial(quotas.bound_apps, s)),
        ("GET", f"{p}/app-quotas/{{app_quota_id}}/bindable-apps", partial(quotas.bound_apps, s)),
        ("DELETE", f"{p}/app-quotas/{{app_quota_id}}/bound-apps/{{app_id}}", partial(quotas.unbind_app, s)),
        ("GET", f"{p}/apps/{{app_id}}/bound-quota", partial(quotas.quota_of_app, s)),
        ("POST", f"{p}/app-auths", partial(apps.app_auths_create, s)),
        ("DELETE", f"{p}/app-auths/{{app_auth_id}}", partial(apps.app_auths_delete, s)),
        ("GET", f"{p}/app-auths/binded-apis", partial(apps.app_auths_list, s)),
        ("GET", f"{p}/app-auths/binded-apps", partial(apps.app_auths_list, s)),
        ("PUT", f"{p}/apps/{{app_id}}/app-acl", partial(apps.app_acl, s)),
        ("GET", f"{p}/apps/{{app_id}}/app-acl", partial(apps.app_acl, s)),
        ("DELETE", f"{p}/apps/{{app_id}}/app-acl", partial(apps.app_acl, s)),
        ("PUT", f"{p}/apps/{{app_id}}/app-codes", partial(apps.app_code_generate, s)),
        ("PUT", f"{p}/apps/secret/{{app_id}}", partial(apps.app_secret_reset, s)),
        ("POST", f"{p}/plugins/{{plugin_id}}/attach", partial(plugins.plugin_attach, s)),
        ("PUT", f"{p}/plugins/{{plugin_id}}/detach", partial(plugins.plugin_attach, s)),
        ("POST", f"{p}/apis/{{api_id}}/plugins/attach", partial(plugins.plugin_attach, s)),
        ("PUT", f"{p}/apis/{{api_id}}/plugins/detach", partial(plugins.plugin_attach, s)),
        ("GET", f"{p}/plugins/{{plugin_id}}/attached-apis", partial(plugins.plugin_attached, s)),
        ("GET", f"{p}/apis/{{api_id}}/attached-plugins", partial(plugins.plugin_attached, s)),
        ("GET", f"{p}/vpc-channels/{{vpc_channel_id}}/members", partial(channels.members, s)),
        ("POST", f"{p}/vpc-channels/{{vpc_channel_id}}/members", partial(channels.members, s)),
        ("PUT", f"{p}/vpc-channels/{{vpc_channel_id}}/members", partial(channels.members, s)),
        ("DELETE", f"{p}/vpc-channels/{{vpc_channel_id}}/members/{{member_id}}", partial(channels.members, s)),
        ("PUT", f"{p}/acls", crud.batch_delete(s, "acls", "acls", "acl_id", "APIG.3006", "access control policy")),
    ]
    for b in BINDINGS:
        table.extend(bindings.routes(s, b, p))
    for res in RESOURCES:
        table.extend(crud.routes(s, res, p))
    return table


def install(app: web.Application, store: DocumentStore) -> None:
    for method, path, handler in routes(store):
        app.router.add_route(method, path, wrap(handler))
