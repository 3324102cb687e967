"""Reads the installed Python `workos` SDK and prints, as Markdown, what FIELDS.md is built from:
for each SDK method the harness calls, the HTTP method, path, query/body keys and response model;
for each model reachable from those, every field with its type and whether from_dict requires it
(`data["k"]` = required: a missing key raises WorkOSError "Unexpected API response").
Run: tests/workos/.venv/bin/python tests/workos/tools/extract_py.py > /tmp/py-fields.md
"""
import ast
import importlib
import inspect
import sys
import textwrap

METHODS = {
    "workos.user_management._resource": ("UserManagement", [
        "get_jwks", "authenticate_with_password", "authenticate_with_code",
        "authenticate_with_code_pkce", "authenticate_with_refresh_token",
        "authenticate_with_magic_auth", "authenticate_with_email_verification",
        "authenticate_with_totp", "authenticate_with_organization_selection",
        "authenticate_with_device_code", "get_authorization_url", "create_device",
        "get_logout_url", "revoke_session", "get_email_verification", "reset_password",
        "confirm_password_reset", "get_password_reset", "list_users", "create_user",
        "get_user_by_external_id", "get_user", "update_user", "delete_user", "verify_email",
        "send_verification_email", "list_sessions", "list_invitations", "send_invitation",
        "find_invitation_by_token", "get_invitation", "accept_invitation", "resend_invitation",
        "revoke_invitation", "create_magic_auth", "get_magic_auth",
    ]),
    "workos.organization_membership._resource": ("OrganizationMembershipService", [
        "list_organization_memberships", "create_organization_membership",
        "get_organization_membership", "update_organization_membership",
        "delete_organization_membership", "deactivate_organization_membership",
        "reactivate_organization_membership",
    ]),
    "workos.organizations._resource": ("Organizations", [
        "list_organizations", "create_organization", "get_organization_by_external_id",
        "get_organization", "update_organization", "delete_organization",
    ]),
    "workos.multi_factor_auth._resource": ("MultiFactorAuth", [
        "verify_challenge", "enroll_factor", "get_factor", "delete_factor", "challenge_factor",
        "list_user_auth_factors", "create_user_auth_factor",
    ]),
}


def const(node):
    return node.value if isinstance(node, ast.Constant) else None


def path_of(node):
    parts = []
    for e in node.elts:
        if isinstance(e, ast.Constant):
            parts.append(e.value)
        else:
            parts.append("{" + ast.unparse(e).replace("str(", "").replace(")", "") + "}")
    return "/" + "/".join(parts)


def dict_keys(d):
    out = []
    if isinstance(d, ast.Dict):
        out += [const(k) for k in d.keys if const(k) is not None]
    elif isinstance(d, ast.DictComp):  # {k: v for k, v in {...}.items() if v is not None}
        src = d.generators[0].iter
        if isinstance(src, ast.Call) and isinstance(src.func, ast.Attribute):
            out += dict_keys(src.func.value)
    return out


def method_info(fn):
    """(http method, path, query keys, body keys(required/optional), model, literal values)"""
    info = {"http": None, "path": None, "model": None, "page": False, "query": [], "body": [],
            "fixed": {}}
    required_body, opt_body = [], []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("request", "request_page", "build_url", "request_raw"):
            if node.func.attr == "build_url":
                info["http"] = "GET (URL only)"
                info["path"] = path_of(node.args[0])
                continue
            info["page"] = node.func.attr == "request_page"
            for kw in node.keywords:
                if kw.arg == "method":
                    info["http"] = const(kw.value).upper()
                elif kw.arg == "path":
                    info["path"] = path_of(kw.value)
                elif kw.arg == "model":
                    info["model"] = ast.unparse(kw.value)
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]
            if isinstance(t, ast.Name) and t.id in ("params", "body"):
                keys = dict_keys(node.value)
                if t.id == "params":
                    info["query"] += keys
                else:
                    if isinstance(node.value, ast.Dict):
                        for k, v in zip(node.value.keys, node.value.values):
                            if const(k) is not None:
                                if isinstance(v, ast.Constant):
                                    info["fixed"][const(k)] = v.value
                                required_body.append(const(k))
                    else:
                        opt_body += keys
            if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and \
                    t.value.id in ("params", "body"):
                k = const(t.slice)
                if k is not None:
                    if t.value.id == "params":
                        info["query"].append(k)
                        if isinstance(node.value, ast.Constant):
                            info["fixed"][k] = node.value.value
                    else:
                        opt_body.append(k)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                node.target.id in ("params", "body") and node.value is not None:
            if node.target.id == "body" and isinstance(node.value, ast.Dict):
                for k, v in zip(node.value.keys, node.value.values):
                    if const(k) is not None:
                        if isinstance(v, ast.Constant):
                            info["fixed"][const(k)] = v.value
                        required_body.append(const(k))
            elif node.target.id == "body":
                opt_body += dict_keys(node.value)
            else:
                info["query"] += dict_keys(node.value)
    seen = set()
    info["body"] = [k for k in required_body if not (k in seen or seen.add(k))] + \
        [k + "?" for k in opt_body if not (k in seen or seen.add(k))]
    info["query"] = list(dict.fromkeys(info["query"]))
    return info


MODELS = {}  # name -> class
ALIASES = {}  # class name -> names the SDK also uses for it


def resolve(mod, name):
    obj = mod.__dict__.get(name)
    if obj is None:
        pkg = mod.__name__.rsplit(".", 1)[0]
        for m in (pkg + ".models", "workos.common.models", "workos.user_management.models",
                  "workos.organization_membership.models", "workos.multi_factor_auth.models"):
            try:
                obj = getattr(importlib.import_module(m), name, None)
            except ImportError:
                obj = None
            if obj is not None:
                break
    if obj is not None and obj.__name__ != name:
        ALIASES.setdefault(obj.__name__, set()).add(name)
    return obj


def model_fields(cls):
    src = textwrap.dedent(inspect.getsource(cls))
    tree = ast.parse(src)
    ann = {}
    for n in tree.body[0].body:
        if isinstance(n, ast.AnnAssign):
            ann[n.target.id] = ast.unparse(n.annotation)
    fd = next((n for n in tree.body[0].body if isinstance(n, ast.FunctionDef)
               and n.name == "from_dict"), None)
    rows, nested = [], []
    if fd is None:
        return rows, nested
    call = next(n for n in ast.walk(fd) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "cls")
    glb = sys.modules[cls.__module__].__dict__
    for kw in call.keywords:
        key, req, default = kw.arg, None, None
        for n in ast.walk(kw.value):
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == "data":
                key, req = const(n.slice), True
                break
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                    n.func.attr == "get" and isinstance(n.func.value, ast.Name) and n.func.value.id == "data":
                key, req = const(n.args[0]), False
                if len(n.args) > 1:
                    default = ast.unparse(n.args[1])
                break
        kinds = []
        for n in ast.walk(kw.value):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "from_dict" \
                    and isinstance(n.func.value, ast.Name):
                nested.append(glb.get(n.func.value.id))
                if nested[-1] is not None and nested[-1].__name__ != n.func.value.id:
                    ALIASES.setdefault(nested[-1].__name__, set()).add(n.func.value.id)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in glb:
                obj = glb[n.func.id]
                if inspect.isclass(obj) and issubclass(obj, str) and hasattr(obj, "__members__"):
                    vals = [m.value for m in obj]
                    kinds.append("enum " + "|".join(vals))
            if isinstance(n, ast.Name) and n.id == "_parse_datetime":
                kinds.append("ISO-8601")
        rows.append((key, ann.get(kw.arg, "?"), req, default, ", ".join(dict.fromkeys(kinds))))
    return rows, nested


def walk_model(cls, order):
    if cls is None or not inspect.isclass(cls) or cls.__name__ in MODELS:
        return
    MODELS[cls.__name__] = cls
    order.append(cls)
    _, nested = model_fields(cls)
    for n in nested:
        walk_model(n, order)


def main():
    order = []
    print("## Python SDK methods (workos 10.8.0)\n")
    print("| method | HTTP | path | query | body (`?` = only when given) | response model |")
    print("|---|---|---|---|---|---|")
    for modname, (clsname, methods) in METHODS.items():
        mod = importlib.import_module(modname)
        rcls = getattr(mod, clsname)
        tree = ast.parse(textwrap.dedent(inspect.getsource(rcls)))
        fns = {n.name: n for n in tree.body[0].body if isinstance(n, ast.FunctionDef)}
        for m in methods:
            info = method_info(fns[m])
            model = info["model"] or ""
            if model:
                walk_model(resolve(mod, model), order)
            body = ", ".join(f"`{k}`" + (f"=`{info['fixed'][k]}`" if k in info["fixed"] else "")
                             for k in info["body"])
            query = ", ".join(f"`{k}`" + (f"=`{info['fixed'][k]}`" if k in info["fixed"] else "")
                              for k in info["query"])
            print(f"| `{clsname}.{m}` | {info['http']} | `{info['path']}` | {query} | {body} | "
                  f"{'list of ' if info['page'] else ''}{model} |")
    from workos.user_management.models import AuthenticateResponse  # noqa
    walk_model(AuthenticateResponse, order)
    print("\n## Python models: `R` = required key (missing → WorkOSError), `o` = optional\n")
    for cls in order:
        rows, _ = model_fields(cls)
        alias = ALIASES.get(cls.__name__)
        aka = f" = {', '.join(sorted(alias))}" if alias else ""
        print(f"### {cls.__name__}{aka} ({cls.__module__})\n")
        print("| key | type | req | parse |")
        print("|---|---|---|---|")
        for key, typ, req, default, kinds in rows:
            r = "R" if req else ("o" + (f" (default {default})" if default else ""))
            print(f"| `{key}` | `{typ}` | {r} | {kinds} |")
        print()


main()
