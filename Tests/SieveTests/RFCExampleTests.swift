@testable import Sieve
import Testing

/// The examples of the RFCs, as scripts in their spirit, with the outcome
/// each RFC describes.
@Suite struct SieveRFCExampleTests {
    /// RFC 5228 section 9: mailing list, known domains, spam, the rest.
    let rfc5228 = #"""
    # Example Sieve Filter
    require "fileinto";
    if header :is "Sender" "owner-ietf-mta-filters@imc.org"
            {
                fileinto "filter";  # move to "filter" mailbox
            }
    elsif address :DOMAIN :is ["From", "To"] "example.com"
            {
                keep;               # keep in "In" mailbox
            }
    elsif anyof (NOT address :all :contains
                   ["To", "Cc", "Bcc"] "me@example.com",
                 header :matches "subject"
                   ["*make*money*fast*", "*university*dipl*mas*"])
            {
                fileinto "spam";   # move to "spam" mailbox
            }
    else
            {
                fileinto "personal";
            }
    """#

    @Test func rfc5228Example() throws {
        let list = Message([("Sender", "owner-ietf-mta-filters@imc.org"), ("To", "me@example.com")])
        #expect(try actions(rfc5228, list) == ["store filter"])
        let local = Message([("From", "Someone <a@example.com>"), ("To", "me@example.com")])
        #expect(try actions(rfc5228, local) == ["store INBOX"])
        let bulk = Message([("From", "x@spam.test"), ("To", "someone@else.test")])
        #expect(try actions(rfc5228, bulk) == ["store spam"])
        // Addressed to me, but not in example.com: the third branch looks at the subject.
        let fast = Message([("From", "x@spam.test"), ("To", "me@example.com.invalid"), ("Subject", "Make MONEY fast!")])
        #expect(try actions(rfc5228, fast) == ["store spam"])
        let friend = Message([("From", "x@friend.test"), ("To", "me@example.com.invalid"), ("Subject", "lunch")])
        #expect(try actions(rfc5228, friend) == ["store personal"])
    }

    /// RFC 5228 2.4.2.4: encoded characters.
    @Test func rfc5228EncodedCharacters() throws {
        let script = #"require ["encoded-character", "fileinto"]; if header :contains "Subject" "$${hex:24 24}" { fileinto "money"; }"#
        #expect(try actions(script, Message([("Subject", "win $$$")])) == ["store money"])
        #expect(try actions(script, Message([("Subject", "win $")])) == ["store INBOX"])
    }

    /// RFC 5229 section 3: match variables from :matches.
    @Test func rfc5229MatchVariables() throws {
        let script = #"""
        require ["fileinto", "variables"];
        if header :matches "List-ID" "*<*@*" {
            fileinto "INBOX.lists.${2}"; stop;
        }
        # Imagine the header
        # Subject: [acme-users] [fwd] version 1.0 is out
        if header :matches "Subject" "[*] *" {
            # ${1} will hold "acme-users",
            # ${2} will hold "[fwd] version 1.0 is out"
            fileinto "INBOX.lists.${1}"; stop;
        }
        # Imagine the header
        # To: coyote@ACME.Example.COM
        if address :matches ["To", "Cc"] ["coyote@**.com",
                "wile@**.com"] {
            # ${0} is the matching address
            # ${1} is always the empty string
            # ${2} is part of the domain name ("ACME.Example")
            fileinto "INBOX.business.${2}"; stop;
        } else {
            # Control wouldn't reach this block if any match was
            # successful, so no match variables are set at this
            # point.
        }
        if anyof (true, address :domain :matches "To" "*.com") {
            # The second test is never evaluated, so there are
            # still no match variables set.
            stop;
        }
        """#
        #expect(try actions(script, Message([("List-ID", "<mta-filters@ietf.example>")])) == ["store INBOX.lists.mta-filters"])
        #expect(try actions(script, Message([("Subject", "[acme-users] [fwd] version 1.0 is out")])) == ["store INBOX.lists.acme-users"])
        #expect(try actions(script, Message([("To", "coyote@ACME.Example.COM")])) == ["store INBOX.business.ACME.Example"])
        #expect(try actions(script, Message([("To", "x@y.org")])) == ["store INBOX"])
    }

    /// RFC 5229 section 4: set and its modifiers.
    @Test func rfc5229Set() throws {
        let script = #"""
        require ["variables", "fileinto"];
        set "honorific"  "Mr";
        set "first_name" "Wile";
        set "last_name"  "Coyote";
        set "greeting" "Dear ${honorific} ${last_name}";
        set "a" "juMBlEd lETteRS";
        set :length "b" "${a}";
        set :lower "c" "${a}";
        set :upper "d" "${a}";
        set :lowerfirst "e" "${a}";
        set :upperfirst :lower "f" "${a}";
        set :quotewildcard "g" "Rock*";
        fileinto "${greeting}|${b}|${c}|${d}|${e}|${f}|${g}";
        """#
        #expect(try actions(script) == [#"store Dear Mr Coyote|15|jumbled letters|JUMBLED LETTERS|juMBlEd lETteRS|Jumbled letters|Rock\*"#])
    }

    /// RFC 5229 section 5: the string test, and an unknown variable is empty.
    @Test func rfc5229StringTest() throws {
        let script = #"""
        require ["variables", "fileinto"];
        set "state" "${state} pending";
        if string :matches " ${state} " "* pending *" {
            # the above test always succeeds
            fileinto "pending";
        }
        """#
        #expect(try actions(script) == ["store pending"])
    }

    /// RFC 5232 section 4 and 7: the internal variable and named ones.
    @Test func rfc5232Flags() throws {
        let script = #"""
        require ["imap4flags", "fileinto", "variables"];
        if size :over 500K {
            setflag "\\Deleted";
        }
        if header :contains "from" "boss@frobnitzm.example.edu" {
            setflag "flagvar" "\\Flagged";
            fileinto :flags "${flagvar}" "INBOX.From Boss";
        }
        if header :contains "Disposition-Notification-To" "mel@example.com" {
            addflag "flagvar" "$MDNRequired";
        }
        if header :contains "from" "imap@cac.washington.example.edu" {
            removeflag "flagvar" "$MDNRequired";
            fileinto :flags "${flagvar}" "INBOX.imap-list";
        }
        """#
        let boss = Message([("From", "boss@frobnitzm.example.edu")], size: 600 * 1024)
        #expect(try actions(script, boss) == ["store INBOX.From Boss \\flagged"])
        let big = Message([("From", "x@y")], size: 600 * 1024)
        #expect(try actions(script, big) == ["store INBOX \\deleted"])
        let imap = Message([("From", "imap@cac.washington.example.edu"), ("Disposition-Notification-To", "mel@example.com")])
        #expect(try actions(script, imap) == ["store INBOX.imap-list"])
    }

    /// RFC 5232 section 5: hasflag, with and without variables.
    @Test func rfc5232HasFlag() throws {
        let script = #"""
        require ["imap4flags", "variables", "relational", "fileinto", "comparator-i;ascii-numeric"];
        set "MyVar" "NonJunk Junk gibberish";
        if hasflag :contains "MyVar" "Junk" { addflag "a"; }
        if hasflag :contains "MyVar" "ju" { addflag "b"; }
        if hasflag :is "MyVar" "Junk" { addflag "c"; }
        if hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "2" { addflag "d"; }
        if hasflag :count "gt" :comparator "i;ascii-numeric" "MyVar" "3" { addflag "e"; }
        """#
        #expect(try actions(script) == ["store INBOX a b c d"])
    }

    /// RFC 5233 section 6: subaddresses of the envelope.
    @Test func rfc5233Subaddress() throws {
        let script = #"""
        require ["envelope", "subaddress", "fileinto"];
        # In this example the same user account receives mail for both
        # "ken@example.com" and "postmaster@example.com"
        # File all messages to postmaster into a single mailbox,
        # ignoring the :detail part.
        if envelope :user "to" "postmaster" {
            fileinto "inbox.postmaster";
            stop;
        }
        # File mailing list messages (subscribed as "ken+mta-filters").
        if envelope :detail "to" "mta-filters" {
            fileinto "inbox.ietf-mta-filters";
        }
        # Redirect all mail sent to "ken+foo".
        if envelope :detail "to" "foo" {
            discard;
        }
        """#
        #expect(try actions(script, Message(recipient: "postmaster+x@example.com")) == ["store inbox.postmaster"])
        #expect(try actions(script, Message(recipient: "ken+mta-filters@example.com")) == ["store inbox.ietf-mta-filters"])
        #expect(try actions(script, Message(recipient: "ken+foo@example.com")) == ["discard"])
        #expect(try actions(script, Message(recipient: "ken@example.com")) == ["store INBOX"])
    }
}
