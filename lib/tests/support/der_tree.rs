//! A DER tree for structure-aware mutation: every TLV is a node, read and
//! written with the `der` crate (tag and length encoding), constructed
//! values split into children. Values are kept as bytes, so a node may
//! carry what DER forbids (a BOOLEAN 0x01, invalid UTF-8): that is the point.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub tag: Tag,
    pub value: Vec<u8>,
    pub kids: Option<Vec<Node>>,
}

impl Node {
    pub fn parse(der: &[u8]) -> Node {
        Self::of(AnyRef::from_der(der).expect("test input is DER"))
    }

    fn of(any: AnyRef<'_>) -> Node {
        let tag = any.tag();
        let value = any.value().to_vec();
        let kids = if tag.is_constructed() {
            let mut r = SliceReader::new(&value).unwrap();
            let mut kids = Vec::new();
            while !r.is_finished() {
                kids.push(Self::of(r.decode::<AnyRef<'_>>().unwrap()));
            }
            Some(kids)
        } else {
            None
        };
        Node { tag, value, kids }
    }

    pub fn content(&self) -> Vec<u8> {
        match &self.kids {
            Some(k) => k.iter().flat_map(Node::encode).collect(),
            None => self.value.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        der::asn1::Any::new(self.tag, self.content())
            .unwrap()
            .to_der()
            .unwrap()
    }

    pub fn prim(tag: Tag, value: impl Into<Vec<u8>>) -> Node {
        Node {
            tag,
            value: value.into(),
            kids: None,
        }
    }

    pub fn cons(tag: Tag, kids: Vec<Node>) -> Node {
        Node {
            tag,
            value: Vec::new(),
            kids: Some(kids),
        }
    }

    pub fn seq(kids: Vec<Node>) -> Node {
        Self::cons(Tag::Sequence, kids)
    }

    pub fn oid(s: &str) -> Node {
        Node::parse(&ObjectIdentifier::new_unwrap(s).to_der().unwrap())
    }

    pub fn octets(v: impl Into<Vec<u8>>) -> Node {
        Self::prim(Tag::OctetString, v)
    }

    pub fn boolean(b: bool) -> Node {
        Self::prim(Tag::Boolean, [if b { 0xff } else { 0 }])
    }

    pub fn int(v: &[u8]) -> Node {
        Self::prim(Tag::Integer, v.to_vec())
    }

    /// A context-specific tag `[n]`, primitive (IMPLICIT) or constructed.
    pub fn ctx(n: u8, kids: Option<Vec<Node>>, value: &[u8]) -> Node {
        let constructed = kids.is_some();
        Node {
            tag: Tag::ContextSpecific {
                constructed,
                number: TagNumber::new(n),
            },
            value: value.to_vec(),
            kids,
        }
    }

    pub fn kids(&self) -> &[Node] {
        self.kids.as_deref().unwrap_or(&[])
    }

    pub fn kids_mut(&mut self) -> &mut Vec<Node> {
        self.kids.as_mut().expect("a constructed node")
    }

    pub fn is_ctx(&self, n: u8) -> bool {
        matches!(self.tag, Tag::ContextSpecific { number, .. } if number == TagNumber::new(n))
    }

    /// Every path (child indices) to a node under this one, depth first.
    pub fn paths(&self) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        fn walk(n: &Node, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            for (i, k) in n.kids().iter().enumerate() {
                here.push(i);
                out.push(here.clone());
                walk(k, here, out);
                here.pop();
            }
        }
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    pub fn at_mut(&mut self, path: &[usize]) -> &mut Node {
        let mut n = self;
        for &i in path {
            n = &mut n.kids_mut()[i];
        }
        n
    }
}

/// An extension: SEQUENCE { extnID, critical BOOLEAN (absent when false), extnValue }.
pub fn extension(oid: &str, critical: bool, value: Vec<u8>) -> Node {
    let mut kids = vec![Node::oid(oid)];
    if critical {
        kids.push(Node::boolean(true));
    }
    kids.push(Node::octets(value));
    Node::seq(kids)
}

/// A GeneralName of context tag `n` (IMPLICIT, primitive).
pub fn general_name(n: u8, value: &[u8]) -> Node {
    Node::ctx(n, None, value)
}
