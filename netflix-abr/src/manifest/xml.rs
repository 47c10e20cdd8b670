//! A small XML reader and writer: enough for DASH MPDs (elements, attributes, text, comments,
//! the XML declaration and the five predefined entities), with no dependencies.

use crate::error::{Error, Result};

/// An element: its name, attributes in document order, children and text.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

impl Element {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Self::default()
        }
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.attrs.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn set_opt(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.set(name, v),
            None => self,
        }
    }

    pub(crate) fn child(mut self, c: Element) -> Self {
        self.children.push(c);
        self
    }

    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub(crate) fn first(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Renders with two-space indentation after an XML declaration.
    pub(crate) fn render_document(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        out.push_str(&pad);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v);
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if self.children.is_empty() {
            escape_into(out, &self.text);
        } else {
            out.push('\n');
            for c in &self.children {
                c.render_into(out, depth + 1);
            }
            out.push_str(&pad);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push_str(">\n");
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str, line: usize) -> Result<String> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .ok_or_else(|| err(line, "an `&` without `;`"))?
            + i;
        let entity = &rest[i + 1..end];
        match entity {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            e if e.starts_with("#x") => out.push(
                u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| err(line, "a bad character reference"))?,
            ),
            e if e.starts_with('#') => out.push(
                e[1..]
                    .parse::<u32>()
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| err(line, "a bad character reference"))?,
            ),
            e => return Err(err(line, &format!("unknown entity `&{e};`"))),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn err(line: usize, reason: &str) -> Error {
    Error::parse("XML", Some(line), reason.to_string())
}

/// Parses a document into its root element.
pub(crate) fn parse(text: &str) -> Result<Element> {
    let mut p = Parser { s: text, i: 0 };
    p.skip_misc()?;
    let root = p.element()?;
    p.skip_misc()?;
    if p.i < p.s.len() {
        return Err(err(p.line(), "content after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn line(&self) -> usize {
        self.s[..self.i].matches('\n').count() + 1
    }

    fn rest(&self) -> &str {
        &self.s[self.i..]
    }

    fn skip_ws(&mut self) {
        let t = self.rest().trim_start();
        self.i = self.s.len() - t.len();
    }

    /// Whitespace, comments, the XML declaration and processing instructions.
    fn skip_misc(&mut self) -> Result<()> {
        loop {
            self.skip_ws();
            if self.rest().starts_with("<?") {
                let end = self
                    .rest()
                    .find("?>")
                    .ok_or_else(|| err(self.line(), "an unterminated `<?`"))?;
                self.i += end + 2;
            } else if self.rest().starts_with("<!--") {
                let end = self
                    .rest()
                    .find("-->")
                    .ok_or_else(|| err(self.line(), "an unterminated comment"))?;
                self.i += end + 3;
            } else if self.rest().starts_with("<!DOCTYPE") {
                return Err(err(self.line(), "a DOCTYPE is not supported"));
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String> {
        let end = self
            .rest()
            .find(|c: char| c.is_whitespace() || matches!(c, '=' | '>' | '/'))
            .unwrap_or(self.rest().len());
        if end == 0 {
            return Err(err(self.line(), "a name was expected"));
        }
        let n = self.rest()[..end].to_string();
        self.i += end;
        Ok(n)
    }

    fn element(&mut self) -> Result<Element> {
        if !self.rest().starts_with('<') {
            return Err(err(self.line(), "an element was expected"));
        }
        self.i += 1;
        let mut e = Element::new(&self.name()?);
        loop {
            self.skip_ws();
            if self.rest().starts_with("/>") {
                self.i += 2;
                return Ok(e);
            }
            if self.rest().starts_with('>') {
                self.i += 1;
                break;
            }
            let line = self.line();
            let k = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(err(line, &format!("attribute `{k}` has no value")));
            }
            self.i += 1;
            self.skip_ws();
            let q = self
                .rest()
                .chars()
                .next()
                .ok_or_else(|| err(line, "unexpected end"))?;
            if q != '"' && q != '\'' {
                return Err(err(line, &format!("attribute `{k}` is not quoted")));
            }
            self.i += 1;
            let end = self
                .rest()
                .find(q)
                .ok_or_else(|| err(line, "an unterminated attribute"))?;
            let v = unescape(&self.rest()[..end], line)?;
            self.i += end + 1;
            if e.attrs.iter().any(|(n, _)| *n == k) {
                return Err(err(line, &format!("attribute `{k}` appears twice")));
            }
            e.attrs.push((k, v));
        }
        // Content: children, text and comments until the matching end tag.
        loop {
            let line = self.line();
            let next = self
                .rest()
                .find('<')
                .ok_or_else(|| err(line, &format!("`{}` is never closed", e.name)))?;
            let text = &self.rest()[..next];
            if !text.trim().is_empty() {
                e.text.push_str(&unescape(text.trim(), line)?);
            }
            self.i += next;
            if self.rest().starts_with("</") {
                self.i += 2;
                let n = self.name()?;
                if n != e.name {
                    return Err(err(self.line(), &format!("`</{n}>` closes `<{}>`", e.name)));
                }
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err(err(self.line(), "`>` expected"));
                }
                self.i += 1;
                return Ok(e);
            } else if self.rest().starts_with("<!--") {
                let end = self
                    .rest()
                    .find("-->")
                    .ok_or_else(|| err(self.line(), "an unterminated comment"))?;
                self.i += end + 3;
            } else {
                e.children.push(self.element()?);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_escapes() {
        let e = Element::new("A")
            .set("x", "1 & <2> \"q\" 'a'")
            .child(Element::new("B").set("y", "z"))
            .child(Element {
                text: "a < b".into(),
                ..Element::new("C")
            });
        let text = e.render_document();
        assert_eq!(parse(&text).unwrap(), e);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for (doc, frag) in [
            ("<A>", "never closed"),
            ("<A></B>", "closes"),
            ("<A x=1/>", "not quoted"),
            ("<A x='1' x='2'/>", "twice"),
            ("<A/><B/>", "after the root"),
            ("<A>&nope;</A>", "unknown entity"),
            ("<!DOCTYPE a><A/>", "DOCTYPE"),
            ("", "element was expected"),
        ] {
            let e = parse(doc).unwrap_err();
            assert!(e.to_string().contains(frag), "{doc}: {e}");
        }
        assert_eq!(
            parse("<?xml version='1.0'?><!-- c --><A>&#65;&#x42;</A>")
                .unwrap()
                .text,
            "AB"
        );
    }
}
