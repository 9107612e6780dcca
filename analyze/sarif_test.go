package analyze_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sarifErr validates doc against the vendored SARIF 2.1.0 schema.
func sarifErr(doc []byte) error {
	schemaText, err := os.ReadFile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		return err
	}
	schemaDoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaText))
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sarif-2.1.0.json", schemaDoc); err != nil {
		return err
	}
	sch, err := c.Compile("sarif-2.1.0.json")
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

func validateSARIF(t *testing.T, doc []byte) {
	t.Helper()
	if err := sarifErr(doc); err != nil {
		t.Fatalf("SARIF output does not validate against the 2.1.0 schema: %v", err)
	}
}

// TestSARIFValidatorRejects makes sure the validation can fail.
func TestSARIFValidatorRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"bad level":      `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "fatal", "message": {"text": "m"}}]}]}`,
		"missing driver": `{"version": "2.1.0", "runs": [{"tool": {}}]}`,
		"wrong version":  `{"version": "3.0", "runs": []}`,
	} {
		if sarifErr([]byte(doc)) == nil {
			t.Errorf("%s: an invalid SARIF document validated", name)
		}
	}
}
