//! The org roles and the rules about them, in one place: who is an admin, who may grant or take
//! away which role, and which membership is the one an org must keep (its last active owner).
//! Memberships store the role as text (`owner` / `org_admin` / `member`); [`Role`] is how code
//! reasons about it.

use crate::db::users::Membership;
use crate::status::MemberStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    OrgAdmin,
    Member,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::OrgAdmin, Role::Member];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::OrgAdmin => "org_admin",
            Role::Member => "member",
        }
    }

    /// May administer the org (members, invitations, keys, webhooks, settings).
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::OrgAdmin)
    }

    /// May `self` move a membership from `from` (None: a new one) to `to`? Only an owner
    /// grants or takes away `owner` (API.md §5); an admin manages every other role.
    pub fn may_set(self, from: Option<Role>, to: Role) -> bool {
        let touches_owner = to == Role::Owner || from == Some(Role::Owner);
        self.is_admin() && (!touches_owner || self == Role::Owner)
    }
}

impl Membership {
    /// The membership's role (an unknown stored value reads as `member`, the least).
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Member)
    }

    pub fn is_active_owner(&self) -> bool {
        self.role() == Role::Owner && self.status == MemberStatus::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_touch_ownership() {
        use Role::*;
        assert!(Owner.may_set(Some(Member), Owner));
        assert!(Owner.may_set(Some(Owner), Member));
        assert!(!OrgAdmin.may_set(Some(Member), Owner));
        assert!(!OrgAdmin.may_set(Some(Owner), OrgAdmin));
        assert!(OrgAdmin.may_set(Some(Member), OrgAdmin));
        assert!(OrgAdmin.may_set(None, Member));
        assert!(!Member.may_set(None, Member));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
