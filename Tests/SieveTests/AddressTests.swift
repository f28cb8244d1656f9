@testable import Sieve
import Testing

/// Reading the addresses of a header, and their parts.
@Suite struct SieveAddressTests {
    @Test func addressesOfAHeader() {
        #expect(AddressList.addresses(in: "Alice <alice@example.com>, bob@example.org") == ["alice@example.com", "bob@example.org"])
        #expect(AddressList.addresses(in: "\"Doe, John\" <john@x.org>, jane@y.org (Jane)") == ["john@x.org", "jane@y.org"])
        #expect(AddressList.addresses(in: "\"john doe\"@example.com") == ["john doe@example.com"])
        #expect(AddressList.addresses(in: "undisclosed-recipients:;") == [])
        #expect(AddressList.addresses(in: "team: a@x.org, b@x.org;, c@y.org") == ["a@x.org", "b@x.org", "c@y.org"])
        #expect(AddressList.addresses(in: "<@relay.example:user@example.com>") == ["user@example.com"])
        #expect(AddressList.addresses(in: "") == [])
        // A display name whose comma was encoded, as headers arrive decoded.
        #expect(AddressList.addresses(in: "Müller, Hans <hans@example.de>, eve@example.org") == ["hans@example.de", "eve@example.org"])
        #expect(AddressList.addresses(in: "bob") == ["bob"])
    }

    @Test func partsOfAnAddress() {
        #expect(AddressList.part(.localpart, of: "bob+lists@example.org") == "bob+lists")
        #expect(AddressList.part(.domain, of: "bob+lists@example.org") == "example.org")
        #expect(AddressList.part(.user, of: "bob+lists+x@example.org") == "bob")
        #expect(AddressList.part(.detail, of: "bob+lists+x@example.org") == "lists+x")
        #expect(AddressList.part(.detail, of: "bob@example.org") == nil)
        #expect(AddressList.part(.detail, of: "bob+@example.org") == "")
        #expect(AddressList.part(.domain, of: "postmaster") == "")
    }
}
