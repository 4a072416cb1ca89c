//! XEP-0030 Service Discovery and XEP-0115 Entity Capabilities
//! (`src/im/disco.rs`): the XEP-0115 §5.2 and §5.3 verification-string
//! vectors, the §5.4 ill-formed cases, query parsing, the server's answers
//! for its domain and (with the XEP-0030 §8 access rules) for accounts.

mod im_xep_common;

use im_xep_common::{arb_stanza, stanza, xml};
use proptest::prelude::*;
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::im::disco::{
    AccountDisco, Caps, CapsError, CapsVerification, DataForm, DiscoError, DiscoInfo, DiscoItem,
    DiscoItems, DiscoQuery, Identity, NS_CAPS, NS_DISCO_INFO, NS_DISCO_ITEMS, Requester,
    ServerDisco,
};
use xmpp_sansio::{FullJid, Jid};

// --- helpers -----------------------------------------------------------------

fn features(info: &DiscoInfo) -> Vec<&str> {
    info.features.iter().map(String::as_str).collect()
}

/// XEP-0115 §5.2: Exodus.
fn exodus() -> DiscoInfo {
    DiscoInfo::new()
        .with_identity(Identity::new("client", "pc").with_name("Exodus 0.9.1"))
        .with_features([
            "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#items",
        ])
}

/// XEP-0115 §5.3: the Psi disco#info result, as printed in the XEP.
const PSI_RESULT: &str = "<query xmlns='http://jabber.org/protocol/disco#info'
       node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='\u{3A8} 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'>
      <value>urn:xmpp:dataforms:softwareinfo</value>
    </field>
    <field var='ip_version' type='text-multi' >
      <value>ipv4</value>
      <value>ipv6</value>
    </field>
    <field var='os'>
      <value>Mac</value>
    </field>
    <field var='os_version'>
      <value>10.5.1</value>
    </field>
    <field var='software'>
      <value>Psi</value>
    </field>
    <field var='software_version'>
      <value>0.11</value>
    </field>
  </x>
</query>";

// --- XEP-0115 §5 ----------------------------------------------------------------

#[test]
fn caps_simple_example_5_2() {
    let info = exodus();
    assert_eq!(
        info.caps_verification_string().unwrap(),
        "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<\
         http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
    );
    assert_eq!(info.caps_ver().unwrap(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

#[test]
fn caps_complex_example_5_3_from_the_xeps_xml() {
    let info = DiscoInfo::from_element(&xml(PSI_RESULT)).unwrap();
    assert_eq!(info.identities.len(), 2);
    assert_eq!(info.identities[0].lang.as_deref(), Some("en"));
    assert_eq!(info.extensions.len(), 1);
    assert_eq!(
        info.extensions[0].form_type(),
        Some("urn:xmpp:dataforms:softwareinfo")
    );
    assert_eq!(
        info.caps_verification_string().unwrap(),
        "client/pc/el/\u{3A8} 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<\
         http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
         http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<\
         ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
    );
    assert_eq!(info.caps_ver().unwrap(), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    // The same built with the API, fields and values out of order.
    let built = DiscoInfo::new()
        .with_identity(
            Identity::new("client", "pc")
                .with_lang("el")
                .with_name("\u{3A8} 0.11"),
        )
        .with_identity(
            Identity::new("client", "pc")
                .with_lang("en")
                .with_name("Psi 0.11"),
        )
        .with_features([
            "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/caps",
        ])
        .with_extension(
            DataForm::extended_info("urn:xmpp:dataforms:softwareinfo")
                .with_field("software_version", ["0.11"])
                .with_field("software", ["Psi"])
                .with_field("os_version", ["10.5.1"])
                .with_field("os", ["Mac"])
                .with_field("ip_version", ["ipv6", "ipv4"]),
        );
    assert_eq!(built.caps_ver().unwrap(), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
}

#[test]
fn caps_sorts_identities_by_category_type_lang_not_by_formatted_string() {
    // "a-b" < "a" as "a-b/…" vs "a/…" strings ('-' < '/'), but the category
    // "a" sorts before "a-b" by octets.
    let info = DiscoInfo::new()
        .with_identity(Identity::new("a-b", "x"))
        .with_identity(Identity::new("a", "x"));
    assert_eq!(info.caps_verification_string().unwrap(), "a/x//<a-b/x//<");
}

#[test]
fn caps_ill_formed_results_5_4() {
    let dup_identity = DiscoInfo {
        identities: vec![Identity::new("client", "pc"), Identity::new("client", "pc")],
        ..DiscoInfo::default()
    };
    assert_eq!(dup_identity.caps_ver(), Err(CapsError::DuplicateIdentity));
    let dup_feature = DiscoInfo {
        identities: vec![Identity::new("client", "pc")],
        features: vec!["urn:a".into(), "urn:a".into()],
        ..DiscoInfo::default()
    };
    assert_eq!(dup_feature.caps_ver(), Err(CapsError::DuplicateFeature));
    let form = DataForm::extended_info("urn:t").with_field("f", ["v"]);
    let dup_form = exodus().with_extension(form.clone()).with_extension(form);
    assert_eq!(dup_form.caps_ver(), Err(CapsError::DuplicateFormType));
    let mut ambiguous = DataForm::extended_info("urn:t");
    ambiguous.fields[0].values.push("urn:u".into());
    assert_eq!(
        exodus().with_extension(ambiguous).caps_ver(),
        Err(CapsError::AmbiguousFormType)
    );
    // Same identity in two languages is fine.
    let langs = DiscoInfo::new()
        .with_identity(Identity::new("client", "pc").with_lang("en"))
        .with_identity(Identity::new("client", "pc").with_lang("de"));
    assert_eq!(
        langs.caps_verification_string().unwrap(),
        "client/pc/de/<client/pc/en/<"
    );
}

#[test]
fn forms_without_hidden_form_type_are_ignored() {
    let plain = exodus().caps_ver().unwrap();
    let not_hidden = DataForm {
        form_kind: "result".into(),
        fields: vec![xmpp_sansio::im::disco::FormField {
            var: Some("FORM_TYPE".into()),
            field_type: None,
            values: vec!["urn:t".into()],
        }],
    };
    let no_form_type = DataForm {
        form_kind: "result".into(),
        fields: vec![],
    }
    .with_field("os", ["Mac"]);
    assert_eq!(
        exodus().with_extension(not_hidden).caps_ver().unwrap(),
        plain
    );
    assert_eq!(
        exodus().with_extension(no_form_type).caps_ver().unwrap(),
        plain
    );
}

#[test]
fn caps_element_from_presence_is_read_and_verified() {
    let presence = stanza(
        "<presence xmlns='jabber:client' from='romeo@montague.lit/orchard'>
           <c xmlns='http://jabber.org/protocol/caps' hash='sha-1'
              node='http://code.google.com/p/exodus' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>
         </presence>",
    );
    let caps = Caps::of(&presence).unwrap();
    assert_eq!(caps.hash.as_deref(), Some("sha-1"));
    assert_eq!(caps.node, "http://code.google.com/p/exodus");
    assert_eq!(
        caps.disco_node(),
        "http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0="
    );
    assert_eq!(caps.verify(&exodus()), CapsVerification::Valid);
    assert_eq!(
        caps.verify(&exodus().with_feature("urn:xmpp:ping")),
        CapsVerification::Mismatch
    );
    let dup = DiscoInfo {
        features: vec!["x".into(), "x".into()],
        ..exodus()
    };
    assert_eq!(
        caps.verify(&dup),
        CapsVerification::IllFormed(CapsError::DuplicateFeature)
    );
    assert_eq!(Caps::from_element(&caps.to_element()), Some(caps.clone()));
    let sha256 = Caps {
        hash: Some("sha-256".into()),
        ..caps.clone()
    };
    assert_eq!(sha256.verify(&exodus()), CapsVerification::UnsupportedHash);
    let legacy = Caps {
        hash: None,
        ext: Some("voice-v1".into()),
        ..caps
    };
    assert_eq!(legacy.verify(&exodus()), CapsVerification::Legacy);
    assert_eq!(Caps::from_element(&legacy.to_element()), Some(legacy));
    // Missing ver or node: not caps.
    assert_eq!(
        Caps::from_element(&xml(
            "<c xmlns='http://jabber.org/protocol/caps' node='n'/>"
        )),
        None
    );
    assert_eq!(Caps::of(&stanza("<presence xmlns='jabber:client'/>")), None);
    assert_eq!(
        Caps::for_info("http://code.google.com/p/exodus", &exodus())
            .unwrap()
            .to_element(),
        xml(
            "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
        )
    );
    assert_eq!(NS_CAPS, "http://jabber.org/protocol/caps");
}

// --- XEP-0030 data ------------------------------------------------------------

#[test]
fn disco_info_round_trips_through_xml() {
    let info = DiscoInfo::from_element(&xml(PSI_RESULT)).unwrap();
    assert_eq!(
        DiscoInfo::from_element(&info.to_element()),
        Ok(info.clone())
    );
    assert_eq!(
        info.node.as_deref(),
        Some("http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w=")
    );
    let built = exodus().with_node("n");
    assert_eq!(DiscoInfo::from_element(&built.to_element()), Ok(built));
    assert_eq!(
        DiscoInfo::from_element(&xml(
            "<query xmlns='http://jabber.org/protocol/disco#info'><identity type='pc'/></query>"
        )),
        Err(DiscoError::MissingAttribute {
            element: "identity",
            attribute: "category"
        })
    );
    assert_eq!(
        DiscoInfo::from_element(&xml(
            "<query xmlns='http://jabber.org/protocol/disco#info'><feature/></query>"
        )),
        Err(DiscoError::MissingAttribute {
            element: "feature",
            attribute: "var"
        })
    );
    assert_eq!(
        DiscoInfo::from_element(&xml(
            "<query xmlns='http://jabber.org/protocol/disco#items'/>"
        )),
        Err(DiscoError::WrongElement)
    );
}

#[test]
fn disco_items_round_trip_and_bad_jid() {
    let items = DiscoItems {
        node: Some("music".into()),
        items: vec![
            DiscoItem::new("catalog.shakespeare.lit".parse().unwrap())
                .with_node("music/A")
                .with_name("A"),
            DiscoItem::new("people.shakespeare.lit".parse().unwrap()),
        ],
    };
    let el = items.to_element();
    assert_eq!(
        el,
        xml(
            "<query xmlns='http://jabber.org/protocol/disco#items' node='music'>
               <item jid='catalog.shakespeare.lit' node='music/A' name='A'/>
               <item jid='people.shakespeare.lit'/>
             </query>"
        )
    );
    assert_eq!(DiscoItems::from_element(&el), Ok(items));
    assert_eq!(
        DiscoItems::from_element(&xml(
            "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='a@@b'/></query>"
        )),
        Err(DiscoError::BadItemJid("a@@b".into()))
    );
}

#[test]
fn query_parsing() {
    let info = stanza(
        "<iq xmlns='jabber:client' type='get' id='info1' to='plays.shakespeare.lit'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    assert_eq!(
        DiscoQuery::from_iq(&info),
        Some(Ok(DiscoQuery::Info { node: None }))
    );
    let items = stanza(
        "<iq xmlns='jabber:client' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#items' node='music'/></iq>",
    );
    let parsed = DiscoQuery::from_iq(&items).unwrap().unwrap();
    assert_eq!(
        parsed,
        DiscoQuery::Items {
            node: Some("music".into())
        }
    );
    assert_eq!(parsed.node(), Some("music"));
    assert_eq!(
        parsed.to_element(),
        xml("<query xmlns='http://jabber.org/protocol/disco#items' node='music'/>")
    );
    for bad in [
        "<iq xmlns='jabber:client' type='set' id='s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        "<iq xmlns='jabber:client' type='get' id='s'><query xmlns='http://jabber.org/protocol/disco#info'/><x xmlns='y'/></iq>",
    ] {
        assert_eq!(
            DiscoQuery::from_iq(&stanza(bad))
                .unwrap()
                .unwrap_err()
                .condition,
            StanzaErrorCondition::BadRequest,
            "{bad}"
        );
    }
    for none in [
        "<iq xmlns='jabber:client' type='result' id='r'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        "<iq xmlns='jabber:client' type='get' id='r'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<message xmlns='jabber:client'><query xmlns='http://jabber.org/protocol/disco#info'/></message>",
    ] {
        assert_eq!(DiscoQuery::from_iq(&stanza(none)), None, "{none}");
    }
}

// --- the server: domain ----------------------------------------------------------

fn server() -> ServerDisco {
    ServerDisco::new(
        Identity::new("server", "im").with_name("capulet"),
        [
            "urn:xmpp:ping",
            "http://jabber.org/protocol/disco#info",
            "urn:xmpp:blocking",
            "urn:xmpp:carbons:2",
            "msgoffline",
        ],
    )
    .with_item(DiscoItem::new("chat.capulet.lit".parse().unwrap()).with_name("Rooms"))
}

#[test]
fn domain_info_lists_the_hosts_features_after_the_disco_ones() {
    let disco = server();
    let info = disco.domain_info();
    assert_eq!(
        info.identities,
        vec![Identity::new("server", "im").with_name("capulet")]
    );
    assert_eq!(
        features(info),
        vec![
            NS_DISCO_INFO,
            NS_DISCO_ITEMS,
            "urn:xmpp:ping",
            "urn:xmpp:blocking",
            "urn:xmpp:carbons:2",
            "msgoffline"
        ]
    );
    // XEP-0280 §3 / XEP-0191 §3.1 discovery: the client asks the server.
    let iq = stanza(
        "<iq xmlns='jabber:client' from='romeo@montague.example/garden' id='info1' to='capulet.lit' type='get'>
           <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let reply = disco.respond_domain(&iq).unwrap();
    assert_eq!(reply.type_attr(), Some("result"));
    assert_eq!(reply.id(), Some("info1"));
    assert_eq!(reply.to(), Some("romeo@montague.example/garden"));
    assert_eq!(reply.from(), Some("capulet.lit"));
    assert_eq!(
        reply.iq_payload().unwrap(),
        &xml("<query xmlns='http://jabber.org/protocol/disco#info'>
                <identity category='server' type='im' name='capulet'/>
                <feature var='http://jabber.org/protocol/disco#info'/>
                <feature var='http://jabber.org/protocol/disco#items'/>
                <feature var='urn:xmpp:ping'/>
                <feature var='urn:xmpp:blocking'/>
                <feature var='urn:xmpp:carbons:2'/>
                <feature var='msgoffline'/>
              </query>")
    );
}

#[test]
fn domain_nodes_and_items() {
    let disco = server();
    let node = stanza(
        "<iq xmlns='jabber:client' type='get' id='n' to='capulet.lit'><query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'/></iq>",
    );
    let reply = disco.respond_domain(&node).unwrap();
    assert_eq!(
        reply.error().unwrap().condition,
        StanzaErrorCondition::ItemNotFound
    );
    assert!(
        reply.element().has_child("query", NS_DISCO_INFO),
        "the query is echoed"
    );
    let items = stanza(
        "<iq xmlns='jabber:client' type='get' id='i' to='capulet.lit'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    assert_eq!(
        disco.respond_domain(&items).unwrap().iq_payload().unwrap(),
        &xml(
            "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='chat.capulet.lit' name='Rooms'/></query>"
        )
    );
    assert_eq!(
        disco
            .answer_domain(&DiscoQuery::Items {
                node: Some("x".into())
            })
            .unwrap_err()
            .condition,
        StanzaErrorCondition::ItemNotFound
    );
    // No items: an empty query, not an error (XEP-0030 §4.1).
    let bare = ServerDisco::new(Identity::new("server", "im"), Vec::<String>::new());
    assert_eq!(
        bare.answer_domain(&DiscoQuery::Items { node: None }),
        Ok(xml(
            "<query xmlns='http://jabber.org/protocol/disco#items'/>"
        ))
    );
    let set = stanza(
        "<iq xmlns='jabber:client' type='set' id='s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    assert_eq!(
        disco
            .respond_domain(&set)
            .unwrap()
            .error()
            .unwrap()
            .condition,
        StanzaErrorCondition::BadRequest
    );
    assert_eq!(
        disco.respond_domain(&stanza(
            "<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
        )),
        None
    );
}

#[test]
fn domain_caps_node_is_answered_and_verifies() {
    let disco = server().with_caps_node("https://example.org/xmpp-sansio");
    let caps = disco.caps().unwrap();
    assert_eq!(caps.hash.as_deref(), Some("sha-1"));
    assert_eq!(caps.ver, disco.domain_info().caps_ver().unwrap());
    let query = DiscoQuery::Info {
        node: Some(caps.disco_node()),
    };
    let answer = DiscoInfo::from_element(&disco.answer_domain(&query).unwrap()).unwrap();
    assert_eq!(answer.node.as_deref(), Some(caps.disco_node().as_str()));
    assert_eq!(caps.verify(&answer), CapsVerification::Valid);
    assert!(server().caps().is_none());
    // A stale ver is an unknown node.
    let stale = DiscoQuery::Info {
        node: Some("https://example.org/xmpp-sansio#AAAA".into()),
    };
    assert_eq!(
        disco.answer_domain(&stale).unwrap_err().condition,
        StanzaErrorCondition::ItemNotFound
    );
}

#[test]
fn domain_extension_forms_are_served() {
    let disco = server().with_extension(
        DataForm::extended_info("http://jabber.org/network/serverinfo")
            .with_field("abuse-addresses", ["mailto:abuse@capulet.lit"]),
    );
    let answer = disco
        .answer_domain(&DiscoQuery::Info { node: None })
        .unwrap();
    let info = DiscoInfo::from_element(&answer).unwrap();
    assert_eq!(info.extensions.len(), 1);
    assert_eq!(
        info.extensions[0].form_type(),
        Some("http://jabber.org/network/serverinfo")
    );
    assert_eq!(
        info.extensions[0].fields[1].values,
        vec!["mailto:abuse@capulet.lit"]
    );
}

// --- the server: accounts (XEP-0030 §3.1, §4.1, §8) -----------------------------------

fn resources() -> Vec<FullJid> {
    vec![
        "juliet@capulet.com/balcony".parse().unwrap(),
        "juliet@capulet.com/chamber".parse().unwrap(),
    ]
}

#[test]
fn account_info_for_owner_and_authorized_xep_0030_example_6() {
    let disco = server().with_account_features(["urn:xmpp:pep"]);
    let resources = resources();
    for requester in [Requester::Owner, Requester::Authorized] {
        let account = AccountDisco {
            exists: true,
            requester,
            resources: &resources,
        };
        let iq = stanza(
            "<iq xmlns='jabber:client' type='get' from='romeo@montague.net/orchard' to='juliet@capulet.com' id='info3'>
               <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        );
        let reply = disco.respond_account(&iq, &account).unwrap();
        assert_eq!(reply.from(), Some("juliet@capulet.com"));
        assert_eq!(
            reply.iq_payload().unwrap(),
            &xml("<query xmlns='http://jabber.org/protocol/disco#info'>
                    <identity category='account' type='registered'/>
                    <feature var='http://jabber.org/protocol/disco#info'/>
                    <feature var='http://jabber.org/protocol/disco#items'/>
                    <feature var='urn:xmpp:pep'/>
                  </query>")
        );
    }
}

#[test]
fn account_access_rules_section_8() {
    let disco = server().with_account_identity(Identity::new("pubsub", "pep"));
    let resources = resources();
    let info = DiscoQuery::Info { node: None };
    let info_node = DiscoQuery::Info {
        node: Some("n".into()),
    };
    let items = DiscoQuery::Items { node: None };
    let items_node = DiscoQuery::Items {
        node: Some("n".into()),
    };
    let empty = xml("<query xmlns='http://jabber.org/protocol/disco#items'/>");
    let empty_node = xml("<query xmlns='http://jabber.org/protocol/disco#items' node='n'/>");
    let cases = [
        (false, Requester::Owner),
        (false, Requester::Authorized),
        (false, Requester::Other),
        (true, Requester::Other),
    ];
    // Not allowed (no account, or not authorized): info → service-unavailable,
    // items → empty, with or without node.
    for (exists, requester) in cases {
        let account = AccountDisco {
            exists,
            requester,
            resources: &resources,
        };
        for query in [&info, &info_node] {
            assert_eq!(
                disco.answer_account(query, &account).unwrap_err().condition,
                StanzaErrorCondition::ServiceUnavailable,
                "{exists} {requester:?} {query:?}"
            );
        }
        assert_eq!(disco.answer_account(&items, &account), Ok(empty.clone()));
        assert_eq!(
            disco.answer_account(&items_node, &account),
            Ok(empty_node.clone())
        );
    }
    // Allowed: identities, resources as items (the XEP-0030 §4.1 example
    // 'items2'), unknown nodes item-not-found.
    let account = AccountDisco {
        exists: true,
        requester: Requester::Authorized,
        resources: &resources,
    };
    let answer = DiscoInfo::from_element(&disco.answer_account(&info, &account).unwrap()).unwrap();
    assert_eq!(
        answer.identities,
        vec![
            Identity::new("account", "registered"),
            Identity::new("pubsub", "pep")
        ]
    );
    assert_eq!(
        disco.answer_account(&items, &account),
        Ok(xml("<query xmlns='http://jabber.org/protocol/disco#items'>
                  <item jid='juliet@capulet.com/balcony'/><item jid='juliet@capulet.com/chamber'/>
                </query>"))
    );
    for query in [&info_node, &items_node] {
        assert_eq!(
            disco.answer_account(query, &account).unwrap_err().condition,
            StanzaErrorCondition::ItemNotFound
        );
    }
    let item = DiscoItems::from_element(&disco.answer_account(&items, &account).unwrap()).unwrap();
    assert_eq!(
        item.items[0].jid,
        "juliet@capulet.com/balcony".parse::<Jid>().unwrap()
    );
}

// --- any input ---------------------------------------------------------------------

proptest! {
    /// Arbitrary (often malformed) stanzas: nothing panics, every answer
    /// carries the request's id and is a `result` or an `error`, and parsing
    /// any child as a disco result, caps or form never panics.
    #[test]
    fn any_stanza_is_answered_without_panic(s in arb_stanza()) {
        let disco = server().with_caps_node("https://example.org/n");
        let resources = resources();
        let mut replies = vec![disco.respond_domain(&s)];
        for requester in [Requester::Owner, Requester::Authorized, Requester::Other] {
            for exists in [true, false] {
                let account = AccountDisco { exists, requester, resources: &resources };
                replies.push(disco.respond_account(&s, &account));
            }
        }
        for reply in replies.into_iter().flatten() {
            prop_assert_eq!(reply.id(), s.id());
            prop_assert!(matches!(reply.type_attr(), Some("result" | "error")));
        }
        for child in s.element().children() {
            if let Ok(info) = DiscoInfo::from_element(child) {
                let _ = info.caps_ver();
                prop_assert_eq!(DiscoInfo::from_element(&info.to_element()), Ok(info));
            }
            let _ = DiscoItems::from_element(child);
            let _ = DataForm::from_element(child);
        }
        if let Some(caps) = Caps::of(&s) {
            let _ = caps.verify(disco.domain_info());
        }
    }
}
