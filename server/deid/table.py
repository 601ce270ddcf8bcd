"""PS3.15 Table E.1-1, the attributes of the Basic Application Level Confidentiality Profile.

Transcribed from the DICOM standard's own DocBook source of PS3.15, edition 2024c (table
E.1-1, "Application Level Confidentiality Profile Attributes"): one line per attribute with
its keyword, its tag, two flags (R: retired in PS3.6; I: used in a standard composite IOD of
PS3.3), the Basic Profile's action code and the options' codes where an option overrides it.
Option columns, by the standard's column heads:

    priv    Retain Safe Private Option          pat     Retain Patient Characteristics Option
    uids    Retain UIDs Option                  full    Retain Longitudinal Full Dates Option
    dev     Retain Device Identity Option       modif   Retain Longitudinal Modified Dates Option
    inst    Retain Institution Identity Option  desc    Clean Descriptors Option
    struct  Clean Structured Content Option     graph   Clean Graphics Option

Four rows of the table are not single attributes and are rules in server/deid/engine.py
instead: Curve Data (50xx,xxxx) X, Overlay Data (60xx,3000) X, Overlay Comments (60xx,4000) X
(the whole of groups 50xx and 60xx is removed) and Private Attributes (odd groups) X.

Each line is checked at import against pydicom's data dictionary, keyword and tag both: a typo
fails loudly instead of silently leaving an attribute unprotected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import BaseTag, Tag

EDITION = "2024c"

# Action codes of the table's legend (PS3.15 E.1.1), compounds included.
CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
OPTIONS = ("priv", "uids", "dev", "inst", "pat", "full", "modif", "desc", "struct", "graph")


@dataclass(frozen=True)
class Attribute:
    """One row: `basic` is the Basic Profile's code, `options` the codes options override."""

    keyword: str
    tag: BaseTag
    vr: str
    retired: bool
    in_standard_iod: bool
    basic: str
    options: MappingProxyType[str, str]


ROWS = """
AccessionNumber                                  0008,0050 I  Z
AcquisitionComments                              0018,4000 R  X      desc=C
AcquisitionContextSequence                       0040,0555 I  X/Z    struct=C
AcquisitionDate                                  0008,0022 I  X/Z    full=K modif=C
AcquisitionDateTime                              0008,002A I  X/Z/D  full=K modif=C
AcquisitionDeviceProcessingDescription           0018,1400 I  X/D    desc=C
AcquisitionFieldOfViewLabel                      0018,11BB I  D      desc=C
AcquisitionProtocolDescription                   0018,9424 I  X      desc=C
AcquisitionTime                                  0008,0032 I  X/Z    full=K modif=C
AcquisitionUID                                   0008,0017 I  U      uids=K
ActualHumanPerformersSequence                    0040,4035 -  X
AdditionalPatientHistory                         0010,21B0 I  X      desc=C
AddressTrial                                     0040,A353 R  X
AdmissionID                                      0038,0010 I  X
AdmittingDate                                    0038,0020 -  X      full=K modif=C
AdmittingDiagnosesCodeSequence                   0008,1084 I  X      desc=C
AdmittingDiagnosesDescription                    0008,1080 I  X      desc=C
AdmittingTime                                    0038,0021 -  X      full=K modif=C
AffectedSOPInstanceUID                           0000,1000 -  X      uids=K
Allergies                                        0010,2110 -  X      pat=C desc=C
AnnotationGroupDescription                       006A,0006 I  X      desc=C
AnnotationGroupLabel                             006A,0005 I  D      desc=C
AnnotationGroupUID                               006A,0003 I  D      uids=K
ApprovalStatusDateTime                           0044,0004 -  X      full=K modif=C
Arbitrary                                        4000,0010 R  X
AssertionDateTime                                0044,0104 I  D      full=K modif=C
AssertionExpirationDateTime                      0044,0105 I  X      full=K modif=C
AttributeModificationDateTime                    0400,0562 I  D      full=K modif=C
AuthorObserverSequence                           0040,A078 I  X
BarcodeValue                                     2200,0005 I  X/Z
BeamDescription                                  300A,00C3 I  X      desc=C
BeamHoldTransitionDateTime                       300C,0127 I  D      dev=K full=K modif=C
BolusDescription                                 300A,00DD I  X      desc=C
BranchOfService                                  0010,1081 -  X
CalibrationDate                                  0014,407E -  X      dev=K full=K modif=C
CalibrationDateTime                              0018,1203 I  Z      dev=K full=K modif=C
CalibrationTime                                  0014,407C -  X      dev=K full=K modif=C
CameraOwnerName                                  0016,004D I  X
CassetteID                                       0018,1007 I  X      dev=K
CertificateOfSigner                              0400,0115 I  D
CertifiedTimestamp                               0400,0310 I  X      full=K modif=C
ClinicalTrialCoordinatingCenterName              0012,0060 I  Z      inst=K
ClinicalTrialProtocolEthicsCommitteeApprovalNumber 0012,0082 I  X
ClinicalTrialProtocolEthicsCommitteeName         0012,0081 I  D      inst=K
ClinicalTrialProtocolID                          0012,0020 I  D
ClinicalTrialProtocolName                        0012,0021 I  Z
ClinicalTrialSeriesDescription                   0012,0072 I  X      desc=C
ClinicalTrialSeriesID                            0012,0071 I  X
ClinicalTrialSiteID                              0012,0030 I  Z      inst=K
ClinicalTrialSiteName                            0012,0031 I  Z      inst=K
ClinicalTrialSponsorName                         0012,0010 I  D
ClinicalTrialSubjectID                           0012,0040 I  D
ClinicalTrialSubjectReadingID                    0012,0042 I  D
ClinicalTrialTimePointDescription                0012,0051 I  X      desc=C
ClinicalTrialTimePointID                         0012,0050 I  Z
CommentsOnRadiationDose                          0040,0310 I  X      desc=C
CommentsOnThePerformedProcedureStep              0040,0280 I  X      desc=C
CompensatorDescription                           300A,02EB I  X      desc=C
ConcatenationUID                                 0020,9161 I  U      uids=K
ConceptualVolumeCombinationDescription           3010,000F I  Z      desc=C
ConceptualVolumeDescription                      3010,0017 I  Z      desc=C
ConceptualVolumeUID                              3010,0006 I  U      uids=K
ConfidentialityConstraintOnPatientDataDescription 0040,3001 -  X
ConstituentConceptualVolumeUID                   3010,0013 I  U      uids=K
ConsultingPhysicianName                          0008,009C I  Z
ConsultingPhysicianIdentificationSequence        0008,009D I  X
ContainerComponentID                             0050,001B I  X
ContainerDescription                             0040,051A I  X      desc=C
ContainerIdentifier                              0040,0512 I  D
ContentCreatorIdentificationCodeSequence         0070,0086 I  X
ContentCreatorName                               0070,0084 I  Z/D
ContentDate                                      0008,0023 I  Z/D    full=K modif=C
ContentSequence                                  0040,A730 I  D      struct=C
ContentTime                                      0008,0033 I  Z/D    full=K modif=C
ContextGroupLocalVersion                         0008,0107 I  D      full=K modif=C
ContextGroupVersion                              0008,0106 I  D      full=K modif=C
ContrastBolusAgent                               0018,0010 I  Z/D    desc=C
ContrastBolusStartTime                           0018,1042 I  X      full=K modif=C
ContrastBolusStopTime                            0018,1043 I  X      full=K modif=C
ContributionDateTime                             0018,A002 I  X      full=K modif=C
ContributionDescription                          0018,A003 I  X      desc=C
CountryOfResidence                               0010,2150 -  X
CreationDate                                     2100,0040 -  X      full=K modif=C
CreationTime                                     2100,0050 -  X      full=K modif=C
CurrentObserverTrial                             0040,A307 R  X
CurrentPatientLocation                           0038,0300 -  X
CurveDate                                        0008,0025 RI X      full=K modif=C
CurveTime                                        0008,0035 RI X      full=K modif=C
CustodialOrganizationSequence                    0040,A07C I  X
DataSetTrailingPadding                           FFFC,FFFC I  X
Date                                             0040,A121 I  D      full=K modif=C
DateOfDocumentOrVerbalTransactionTrial           0040,A110 R  X      full=K modif=C
DateOfInstallation                               0018,1205 I  X      dev=K full=K modif=C
DateOfLastCalibration                            0018,1200 I  X      dev=K full=K modif=C
DateOfLastDetectorCalibration                    0018,700C I  X/D    dev=K full=K modif=C
DateOfManufacture                                0018,1204 I  X      dev=K full=K modif=C
DateOfSecondaryCapture                           0018,1012 I  X      full=K modif=C
DateTime                                         0040,A120 I  D      full=K modif=C
DateTimeOfLastCalibration                        0018,1202 -  X      dev=K full=K modif=C
DecayCorrectionDateTime                          0018,9701 I  D      full=K modif=C
DecompositionDescription                         0018,937F I  X      desc=C
DerivationDescription                            0008,2111 I  X      desc=C
DestinationAE                                    2100,0140 I  D      dev=C
DetectorID                                       0018,700A I  X/D    dev=K
DeviceAlternateIdentifier                        3010,001B I  Z
DeviceDescription                                0050,0020 I  X      dev=K
DeviceLabel                                      3010,002D I  D      dev=K
DeviceSerialNumber                               0018,1000 I  X/Z/D  dev=K
DeviceSettingDescription                         0016,004B I  X      desc=C
DeviceUID                                        0018,1002 I  U      uids=K dev=K
DigitalSignatureDateTime                         0400,0105 I  D      full=K modif=C
DigitalSignaturesSequence                        FFFA,FFFA I  X
DigitalSignatureUID                              0400,0100 I  U
DimensionOrganizationUID                         0020,9164 I  U      uids=K
DischargeDate                                    0038,0030 R  X      full=K modif=C
DischargeDiagnosisDescription                    0038,0040 R  X      desc=C
DischargeTime                                    0038,0032 R  X      full=K modif=C
DisplacementReferenceLabel                       300A,079A I  X      desc=C
DistributionAddress                              4008,011A R  X
DistributionName                                 4008,0119 R  X
DoseReferenceDescription                         300A,0016 I  X      desc=C
DoseReferenceUID                                 300A,0013 I  U      uids=K
DosimetricObjectiveUID                           3010,006E I  U      uids=K
EffectiveDateTime                                0068,6226 I  D      full=K modif=C
EncapsulatedDocument                             0042,0011 I  D
EndAcquisitionDateTime                           0018,9517 I  X/D    full=K modif=C
EntityDescription                                3010,0037 I  X      desc=C
EntityLabel                                      3010,0035 I  D      desc=C
EntityLongLabel                                  3010,0038 I  D      desc=C
EntityName                                       3010,0036 I  X      desc=C
EquipmentFrameOfReferenceDescription             300A,0676 I  X      desc=C
EthicsCommitteeApprovalEffectivenessEndDate      0012,0087 I  X      full=K modif=C
EthicsCommitteeApprovalEffectivenessStartDate    0012,0086 I  X      full=K modif=C
EthnicGroup                                      0010,2160 I  X      pat=K
EthnicGroupCodeSequence                          0010,2161 I  X      pat=K
ExclusionStartDateTime                           0018,9804 I  D      full=K modif=C
ExpectedCompletionDateTime                       0040,4011 -  X      full=K modif=C
FailedSOPInstanceUIDList                         0008,0058 -  U      uids=K
FiducialUID                                      0070,031A I  U      uids=K
FillerOrderNumberImagingServiceRequest           0040,2017 I  Z
FilterLookupTableDescription                     003A,032B I  X      desc=C
FindingsGroupRecordingDateTrial                  0040,A023 R  X      full=K modif=C
FindingsGroupRecordingTimeTrial                  0040,A024 R  X      full=K modif=C
FirstTreatmentDate                               3008,0054 I  X/D    full=K modif=C
FixationDeviceDescription                        300A,0196 I  X      desc=C
FlowIdentifier                                   0034,0002 I  D
FlowIdentifierSequence                           0034,0001 I  D
FractionationNotes                               3010,007F I  Z      desc=C
FractionGroupDescription                         300A,0072 I  X      desc=C
FrameAcquisitionDateTime                         0018,9074 I  D      full=K modif=C
FrameComments                                    0020,9158 I  X      desc=C
FrameOfReferenceUID                              0020,0052 I  U      uids=K
FrameOriginTimestamp                             0034,0007 I  D      full=K modif=C
FrameReferenceDateTime                           0018,9151 I  D      full=K modif=C
FunctionalSyncPulse                              0018,9623 I  D      full=K modif=C
GantryID                                         0018,1008 I  X      dev=K
GeneratorID                                      0018,1005 I  X      dev=K
GPSAltitude                                      0016,0076 I  X
GPSAltitudeRef                                   0016,0075 I  X
GPSAreaInformation                               0016,008C I  X
GPSDateStamp                                     0016,008D I  X      full=K modif=C
GPSDestBearing                                   0016,0088 I  X
GPSDestBearingRef                                0016,0087 I  X
GPSDestDistance                                  0016,008A I  X
GPSDestDistanceRef                               0016,0089 I  X
GPSDestLatitude                                  0016,0084 I  X
GPSDestLatitudeRef                               0016,0083 I  X
GPSDestLongitude                                 0016,0086 I  X
GPSDestLongitudeRef                              0016,0085 I  X
GPSDifferential                                  0016,008E I  X
GPSDOP                                           0016,007B I  X
GPSImgDirection                                  0016,0081 I  X
GPSImgDirectionRef                               0016,0080 I  X
GPSLatitude                                      0016,0072 I  X
GPSLatitudeRef                                   0016,0071 I  X
GPSLongitude                                     0016,0074 I  X
GPSLongitudeRef                                  0016,0073 I  X
GPSMapDatum                                      0016,0082 I  X
GPSMeasureMode                                   0016,007A I  X
GPSProcessingMethod                              0016,008B I  X
GPSSatellites                                    0016,0078 I  X
GPSSpeed                                         0016,007D I  X
GPSSpeedRef                                      0016,007C I  X
GPSStatus                                        0016,0079 I  X
GPSTimeStamp                                     0016,0077 I  X
GPSTrack                                         0016,007F I  X
GPSTrackRef                                      0016,007E I  X
GPSVersionID                                     0016,0070 I  X
GraphicAnnotationSequence                        0070,0001 I  D      graph=C
HangingProtocolCreationDateTime                  0072,000A I  D      full=K modif=C
HL7DocumentEffectiveTime                         0040,E004 -  X      full=K modif=C
HumanPerformerName                               0040,4037 -  X
HumanPerformerOrganization                       0040,4036 -  X
IconImageSequence                                0088,0200 I  X
IdentifyingComments                              0008,4000 R  X      desc=C
ImageComments                                    0020,4000 I  X      desc=C
ImagePresentationComments                        0028,4000 R  X
ImagingServiceRequestComments                    0040,2400 -  X      desc=C
ImpedanceMeasurementDateTime                     003A,0314 I  D      full=K modif=C
Impressions                                      4008,0300 R  X      desc=C
InformationIssueDateTime                         0068,6270 I  D      full=K modif=C
InstanceCoercionDateTime                         0008,0015 I  X      full=K modif=C
InstanceCreationDate                             0008,0012 I  X/D    full=K modif=C
InstanceCreationTime                             0008,0013 I  X/Z/D  full=K modif=C
InstanceCreatorUID                               0008,0014 I  U      uids=K
InstanceOriginStatus                             0400,0600 I  X
InstitutionAddress                               0008,0081 I  X      inst=K
InstitutionalDepartmentName                      0008,1040 I  X      inst=K
InstitutionalDepartmentTypeCodeSequence          0008,1041 I  X      inst=K
InstitutionCodeSequence                          0008,0082 I  X/Z/D  inst=K
InstitutionName                                  0008,0080 I  X/Z/D  inst=K
InstructionPerformedDateTime                     0018,9919 I  Z/D    full=K modif=C
InsurancePlanIdentification                      0010,1050 R  X
IntendedFractionStartTime                        3010,0085 I  X      full=K modif=C
IntendedPhaseEndDate                             3010,004D I  X/D    full=K modif=C
IntendedPhaseStartDate                           3010,004C I  X/D    full=K modif=C
IntendedRecipientsOfResultsIdentificationSequence 0040,1011 -  X
InterlockDateTime                                300A,0741 I  D      full=K modif=C
InterlockDescription                             300A,0742 I  D      desc=C
InterlockOriginDescription                       300A,0783 I  D      desc=C
InterpretationApprovalDate                       4008,0112 R  X      full=K modif=C
InterpretationApprovalTime                       4008,0113 R  X      full=K modif=C
InterpretationApproverSequence                   4008,0111 R  X
InterpretationAuthor                             4008,010C R  X
InterpretationDiagnosisDescription               4008,0115 R  X      desc=C
InterpretationID                                 4008,0200 R  X
InterpretationIDIssuer                           4008,0202 R  X
InterpretationRecordedDate                       4008,0100 R  X      full=K modif=C
InterpretationRecordedTime                       4008,0101 R  X      full=K modif=C
InterpretationRecorder                           4008,0102 R  X
InterpretationText                               4008,010B R  X      desc=C
InterpretationTranscriber                        4008,010A R  X
InterpretationTranscriptionDate                  4008,0108 R  X      full=K modif=C
InterpretationTranscriptionTime                  4008,0109 R  X      full=K modif=C
InterventionDrugStartTime                        0018,0035 I  X      full=K modif=C
InterventionDrugStopTime                         0018,0027 I  X      full=K modif=C
IrradiationEventUID                              0008,3010 I  U      uids=K
IssueDateOfImagingServiceRequest                 0040,2004 -  X      full=K modif=C
IssuerOfAdmissionID                              0038,0011 RI X
IssuerOfAdmissionIDSequence                      0038,0014 I  X
IssuerOfClinicalTrialProtocolID                  0012,0022 I  X
IssuerOfClinicalTrialSeriesID                    0012,0073 I  X
IssuerOfClinicalTrialSiteID                      0012,0032 I  X
IssuerOfClinicalTrialSubjectID                   0012,0041 I  X
IssuerOfClinicalTrialSubjectReadingID            0012,0043 I  X
IssuerOfClinicalTrialTimePointID                 0012,0055 I  X
IssuerOfPatientID                                0010,0021 I  X
IssuerOfServiceEpisodeID                         0038,0061 RI X
IssuerOfServiceEpisodeIDSequence                 0038,0064 I  X
IssuerOfTheContainerIdentifierSequence           0040,0513 I  Z
IssuerOfTheSpecimenIdentifierSequence            0040,0562 I  Z
IssueTimeOfImagingServiceRequest                 0040,2005 -  X      full=K modif=C
LabelText                                        2200,0002 I  X/Z    desc=C
LargePaletteColorLookupTableUID                  0028,1214 R  U      uids=K
LastMenstrualDate                                0010,21D0 -  X      full=K modif=C
LensMake                                         0016,004F I  X      dev=K
LensModel                                        0016,0050 I  X      dev=K
LensSerialNumber                                 0016,0051 I  X      dev=K
LensSpecification                                0016,004E I  X      dev=K
LongDeviceDescription                            0050,0021 I  X      desc=C
MAC                                              0400,0404 I  X
MakerNote                                        0016,002B I  X      desc=C
ManufacturerDeviceClassUID                       0018,100B I  U      uids=K dev=K
ManufacturerDeviceIdentifier                     3010,0043 I  Z      dev=K
MediaStorageSOPInstanceUID                       0002,0003 -  U      uids=K
MedicalAlerts                                    0010,2000 -  X      desc=C
MedicalRecordLocator                             0010,1090 R  X
MilitaryRank                                     0010,1080 -  X
ModifiedAttributesSequence                       0400,0550 -  X
ModifiedImageDate                                0020,3403 R  X      full=K modif=C
ModifiedImageDescription                         0020,3406 R  X
ModifiedImageTime                                0020,3405 R  X      full=K modif=C
ModifyingDeviceID                                0020,3401 R  X      dev=K
ModifyingSystem                                  0400,0563 I  D      dev=K
MostRecentTreatmentDate                          3008,0056 I  X/D    full=K modif=C
MultienergyAcquisitionDescription                0018,937B I  X      desc=C
MultiplexGroupUID                                003A,0310 I  U      uids=K
NameOfPhysiciansReadingStudy                     0008,1060 I  X
NamesOfIntendedRecipientsOfResults               0040,1010 -  X
NetworkID                                        0008,1000 R  X      dev=C
NonconformingDataElementValue                    0400,0552 -  X
NonconformingModifiedAttributesSequence          0400,0551 -  X
ObservationDateTrial                             0040,A192 R  X      full=K modif=C
ObservationDateTime                              0040,A032 I  X/D    full=K modif=C
ObservationStartDateTime                         0040,A033 I  X      full=K modif=C
ObservationSubjectUIDTrial                       0040,A402 R  U      uids=K
ObservationTimeTrial                             0040,A193 R  X      full=K modif=C
ObservationUID                                   0040,A171 I  U      uids=K
Occupation                                       0010,2180 I  X      desc=C
OperatorIdentificationSequence                   0008,1072 I  X/D
OperatorsName                                    0008,1070 I  X/Z/D
OrderCallbackPhoneNumber                         0040,2010 -  X
OrderCallbackTelecomInformation                  0040,2011 -  X
OrderEnteredBy                                   0040,2008 -  X
OrderEntererLocation                             0040,2009 -  X
OriginalAttributesSequence                       0400,0561 I  X
Originator                                       2100,0070 -  X      dev=C
OtherClinicalTrialProtocolIDsSequence            0012,0023 I  X
OtherPatientIDs                                  0010,1000 RI X
OtherPatientIDsSequence                          0010,1002 I  X
OtherPatientNames                                0010,1001 I  X
OverlayDate                                      0008,0024 RI X      full=K modif=C
OverlayTime                                      0008,0034 RI X      full=K modif=C
OverrideDateTime                                 300A,0760 I  D      full=K modif=C
PaletteColorLookupTableUID                       0028,1199 I  U      uids=K
ParticipantSequence                              0040,A07A I  X
ParticipationDateTime                            0040,A082 I  Z      full=K modif=C
PatientAddress                                   0010,1040 -  X
PatientAge                                       0010,1010 I  X      pat=K
PatientBirthDate                                 0010,0030 I  Z
PatientBirthName                                 0010,1005 -  X
PatientBirthTime                                 0010,0032 I  X
PatientInstitutionResidence                      0038,0400 -  X
PatientInsurancePlanCodeSequence                 0010,0050 I  X
PatientMotherBirthName                           0010,1060 -  X
PatientName                                      0010,0010 I  Z
PatientPrimaryLanguageCodeSequence               0010,0101 I  X
PatientPrimaryLanguageModifierCodeSequence       0010,0102 I  X
PatientReligiousPreference                       0010,21F0 -  X
PatientSex                                       0010,0040 I  Z      pat=K
PatientSexNeutered                               0010,2203 I  X/Z    pat=K
PatientSize                                      0010,1020 I  X      pat=K
PatientTelecomInformation                        0010,2155 -  X
PatientTelephoneNumbers                          0010,2154 -  X
PatientWeight                                    0010,1030 I  X      pat=K
PatientComments                                  0010,4000 I  X      desc=C
PatientID                                        0010,0020 I  Z/D
PatientSetupPhotoDescription                     300A,0794 I  X      desc=C
PatientSetupUID                                  300A,0650 R  U      uids=K
PatientState                                     0038,0500 -  X      pat=C desc=C
PatientTransportArrangements                     0040,1004 -  X
PatientTreatmentPreparationMethodDescription     300A,0792 I  X      desc=C
PatientTreatmentPreparationProcedureParameterDescription 300A,078E I  X      desc=C
PerformedLocation                                0040,0243 -  X
PerformedProcedureStepDescription                0040,0254 I  X      desc=C
PerformedProcedureStepEndDate                    0040,0250 I  X      full=K modif=C
PerformedProcedureStepEndDateTime                0040,4051 -  X      full=K modif=C
PerformedProcedureStepEndTime                    0040,0251 I  X      full=K modif=C
PerformedProcedureStepID                         0040,0253 I  X
PerformedProcedureStepStartDate                  0040,0244 I  X      full=K modif=C
PerformedProcedureStepStartDateTime              0040,4050 -  X      full=K modif=C
PerformedProcedureStepStartTime                  0040,0245 I  X      full=K modif=C
PerformedStationAETitle                          0040,0241 -  X      dev=C
PerformedStationGeographicLocationCodeSequence   0040,4030 -  X      dev=K
PerformedStationName                             0040,0242 -  X      dev=K
PerformedStationNameCodeSequence                 0040,4028 -  X      dev=K
PerformingPhysicianName                          0008,1050 I  X
PerformingPhysicianIdentificationSequence        0008,1052 I  X
PersonAddress                                    0040,1102 I  X
PersonTelecomInformation                         0040,1104 I  X
PersonTelephoneNumbers                           0040,1103 I  X
PersonIdentificationCodeSequence                 0040,1101 I  D
PersonName                                       0040,A123 I  D
PhysiciansOfRecord                               0008,1048 I  X
PhysiciansOfRecordIdentificationSequence         0008,1049 I  X
PhysiciansReadingStudyIdentificationSequence     0008,1062 I  X
PhysicianApprovingInterpretation                 4008,0114 R  X
PlacerOrderNumberImagingServiceRequest           0040,2016 I  Z
PlateID                                          0018,1004 I  X      dev=K
PositionAcquisitionTemplateDescription           3002,0123 I  X      desc=C
PositionAcquisitionTemplateName                  3002,0121 I  X      desc=C
PregnancyStatus                                  0010,21C0 -  X      pat=K
PreMedication                                    0040,0012 -  X      pat=C
PrescriptionDescription                          300A,000E I  X      desc=C
PrescriptionNotes                                3010,007B I  Z      desc=C
PrescriptionNotesSequence                        3010,0081 I  Z      desc=C
PresentationCreationDate                         0070,0082 I  X      full=K modif=C
PresentationCreationTime                         0070,0083 I  X      full=K modif=C
PresentationDisplayCollectionUID                 0070,1101 I  U      uids=K
PresentationSequenceCollectionUID                0070,1102 I  U      uids=K
PriorTreatmentDoseDescription                    3010,0061 I  X      desc=C
ProcedureStepCancellationDateTime                0040,4052 -  X      full=K modif=C
ProductExpirationDateTime                        0044,000B -  X      full=K modif=C
ProtocolName                                     0018,1030 I  X/D    desc=C
PyramidDescription                               0008,1088 I  X      desc=C
PyramidLabel                                     0020,0027 I  X      desc=C
PyramidUID                                       0008,0019 I  U      uids=K
RadiationDoseIdentificationLabel                 300A,0619 I  D      desc=C
RadiationDoseInVivoMeasurementLabel              300A,0623 I  D      desc=C
RadiationGenerationModeDescription               300A,067D I  Z      desc=C
RadiationGenerationModeLabel                     300A,067C I  D      desc=C
RadiopharmaceuticalStartDateTime                 0018,1078 I  X      full=K modif=C
RadiopharmaceuticalStartTime                     0018,1072 I  X      full=K modif=C
RadiopharmaceuticalStopDateTime                  0018,1079 I  X      full=K modif=C
RadiopharmaceuticalStopTime                      0018,1073 I  X      full=K modif=C
ReasonForOmissionDescription                     300C,0113 I  X      desc=C
ReasonForRequestedProcedureCodeSequence          0040,100A I  X      desc=C
ReasonForStudy                                   0032,1030 R  X      desc=C
ReasonForSuperseding                             3010,005C I  Z      desc=C
ReasonForTheAttributeModification                0400,0565 I  D      desc=C
ReasonForTheImagingServiceRequest                0040,2001 R  X      desc=C
ReasonForTheRequestedProcedure                   0040,1002 I  X      desc=C
ReasonForVisit                                   0032,1066 I  X      desc=C
ReasonForVisitCodeSequence                       0032,1067 I  X      desc=C
ReceivingAE                                      0074,1234 -  X      dev=C
RecordedRTControlPointDateTime                   300A,073A I  D      full=K modif=C
ReferencedConceptualVolumeUID                    3010,000B I  U      uids=K
ReferencedDateTime                               0040,A13A I  D      full=K modif=C
ReferencedDigitalSignatureSequence               0400,0402 I  X
ReferencedDoseReferenceUID                       300A,0083 I  U      uids=K
ReferencedDosimetricObjectiveUID                 3010,006F I  U      uids=K
ReferencedFiducialsUID                           3010,0031 I  U      uids=K
ReferencedFrameOfReferenceUID                    3006,0024 I  U      uids=K
ReferencedGeneralPurposeScheduledProcedureStepTransactionUID 0040,4023 R  U      uids=K
ReferencedImageSequence                          0008,1140 I  X/Z/U* uids=K
ReferencedObservationUIDTrial                    0040,A172 R  U      uids=K
ReferencedPatientAliasSequence                   0038,0004 R  X
ReferencedPatientPhotoSequence                   0010,1100 I  X
ReferencedPatientSequence                        0008,1120 I  X      uids=K
ReferencedPerformedProcedureStepSequence         0008,1111 I  X/Z/D  uids=K
ReferencedSOPInstanceMACSequence                 0400,0403 I  X
ReferencedSOPInstanceUID                         0008,1155 I  U      uids=K
ReferencedSOPInstanceUIDInFile                   0004,1511 -  U      uids=K
ReferencedStudySequence                          0008,1110 I  X/Z    uids=K
ReferencedTreatmentPositionGroupUID              300A,0785 I  U      uids=K
ReferringPhysicianAddress                        0008,0092 -  X
ReferringPhysicianName                           0008,0090 I  Z
ReferringPhysicianTelephoneNumbers               0008,0094 -  X
ReferringPhysicianIdentificationSequence         0008,0096 I  X
RegionOfResidence                                0010,2152 -  X
RelatedFrameOfReferenceUID                       3006,00C2 R  U      uids=K
RequestAttributesSequence                        0040,0275 I  X      desc=C
RequestedContrastAgent                           0032,1070 -  X      desc=C
RequestedProcedureComments                       0040,1400 -  X      desc=C
RequestedProcedureDescription                    0032,1060 I  X/Z    desc=C
RequestedProcedureID                             0040,1001 -  X
RequestedProcedureLocation                       0040,1005 -  X
RequestedSeriesDescription                       0018,9937 I  X      desc=C
RequestedSOPInstanceUID                          0000,1001 -  U      uids=K
RequestingAE                                     0074,1236 -  X      dev=C
RequestingPhysician                              0032,1032 -  X
RequestingService                                0032,1033 -  X
RespiratoryMotionCompensationTechniqueDescription 0018,9185 I  X      desc=C
ResponsibleOrganization                          0010,2299 I  X
ResponsiblePerson                                0010,2297 I  X
ResultsComments                                  4008,4000 R  X      desc=C
ResultsDistributionListSequence                  4008,0118 R  X
ResultsID                                        4008,0040 R  X
ResultsIDIssuer                                  4008,0042 R  X
RetrieveAETitle                                  0008,0054 I  X      dev=C
ReviewDate                                       300E,0004 I  Z      full=K modif=C
ReviewerName                                     300E,0008 I  X/Z
ReviewTime                                       300E,0005 I  Z      full=K modif=C
ROICreatorSequence                               3006,004D I  X
ROIDateTime                                      3006,002D I  X      full=K modif=C
ROIDescription                                   3006,0028 I  X      desc=C
ROIGenerationDescription                         3006,0038 I  X      desc=C
ROIInterpreter                                   3006,00A6 I  Z
ROIInterpreterSequence                           3006,004E I  X
ROIName                                          3006,0026 I  Z      desc=C
ROIObservationDateTime                           3006,002E I  X      full=K modif=C
ROIObservationDescription                        3006,0088 RI X      desc=C
ROIObservationLabel                              3006,0085 RI X      desc=C
RTAccessoryDeviceSlotID                          300A,0615 I  Z
RTAccessoryHolderSlotID                          300A,0611 I  Z
RTPhysicianIntentNarrative                       3010,005A I  Z      desc=C
RTPlanDate                                       300A,0006 I  X/D    full=K modif=C
RTPlanDescription                                300A,0004 I  X      desc=C
RTPlanLabel                                      300A,0002 I  D      desc=C
RTPlanName                                       300A,0003 I  X      desc=C
RTPlanTime                                       300A,0007 I  X/D    full=K modif=C
RTPrescriptionLabel                              3010,0054 I  D      desc=C
RTToleranceSetLabel                              300A,062A I  D      desc=C
RTTreatmentApproachLabel                         3010,0056 I  X/D    desc=C
RTTreatmentPhaseUID                              3010,003B I  U      uids=K
SafePositionExitDate                             3008,0162 I  D      full=K modif=C
SafePositionExitTime                             3008,0164 I  D      full=K modif=C
SafePositionReturnDate                           3008,0166 I  D      full=K modif=C
SafePositionReturnTime                           3008,0168 I  D      full=K modif=C
ScheduledAdmissionDate                           0038,001A R  X      full=K modif=C
ScheduledAdmissionTime                           0038,001B R  X      full=K modif=C
ScheduledDischargeDate                           0038,001C R  X      full=K modif=C
ScheduledDischargeTime                           0038,001D R  X      full=K modif=C
ScheduledHumanPerformersSequence                 0040,4034 -  X
ScheduledPatientInstitutionResidence             0038,001E R  X
ScheduledPerformingPhysicianName                 0040,0006 -  X
ScheduledPerformingPhysicianIdentificationSequence 0040,000B -  X
ScheduledProcedureStepDescription                0040,0007 I  X      desc=C
ScheduledProcedureStepEndDate                    0040,0004 -  X      full=K modif=C
ScheduledProcedureStepEndTime                    0040,0005 -  X      full=K modif=C
ScheduledProcedureStepExpirationDateTime         0040,4008 -  X      full=K modif=C
ScheduledProcedureStepID                         0040,0009 I  X
ScheduledProcedureStepLocation                   0040,0011 -  X      dev=K
ScheduledProcedureStepModificationDateTime       0040,4010 -  X      full=K modif=C
ScheduledProcedureStepStartDate                  0040,0002 -  X      full=K modif=C
ScheduledProcedureStepStartDateTime              0040,4005 -  X      full=K modif=C
ScheduledProcedureStepStartTime                  0040,0003 -  X      full=K modif=C
ScheduledStationAETitle                          0040,0001 -  X      dev=C
ScheduledStationGeographicLocationCodeSequence   0040,4027 -  X      dev=K
ScheduledStationName                             0040,0010 -  X      dev=K
ScheduledStationNameCodeSequence                 0040,4025 -  X      dev=K
ScheduledStudyLocation                           0032,1020 R  X      dev=K
ScheduledStudyLocationAETitle                    0032,1021 R  X      dev=C
ScheduledStudyStartDate                          0032,1000 R  X      full=K modif=C
ScheduledStudyStartTime                          0032,1001 R  X      full=K modif=C
ScheduledStudyStopDate                           0032,1010 R  X      full=K modif=C
ScheduledStudyStopTime                           0032,1011 R  X      full=K modif=C
SelectorAEValue                                  0072,005E I  D      dev=C
SelectorASValue                                  0072,005F I  D      pat=K
SelectorDAValue                                  0072,0061 I  D      full=K modif=C
SelectorDTValue                                  0072,0063 I  D      full=K modif=C
SelectorLOValue                                  0072,0066 I  D      desc=C
SelectorLTValue                                  0072,0068 I  D      desc=C
SelectorOBValue                                  0072,0065 I  D
SelectorPNValue                                  0072,006A I  D
SelectorSHValue                                  0072,006C I  D      desc=C
SelectorSTValue                                  0072,006E I  D      desc=C
SelectorTMValue                                  0072,006B I  D      full=K modif=C
SelectorUNValue                                  0072,006D I  D
SelectorURValue                                  0072,0071 I  D
SelectorUTValue                                  0072,0070 I  D      desc=C
SeriesDate                                       0008,0021 I  X/D    full=K modif=C
SeriesDescription                                0008,103E I  X      desc=C
SeriesInstanceUID                                0020,000E I  U      uids=K
SeriesTime                                       0008,0031 I  X/D    full=K modif=C
ServiceEpisodeDescription                        0038,0062 I  X      desc=C
ServiceEpisodeID                                 0038,0060 I  X
SetupTechniqueDescription                        300A,01B2 I  X      desc=C
ShieldingDeviceDescription                       300A,01A6 I  X      desc=C
SlideIdentifier                                  0040,06FA R  X
SmokingStatus                                    0010,21A0 -  X      pat=K
SOPAuthorizationDateTime                         0100,0420 I  X      full=K modif=C
SOPInstanceUID                                   0008,0018 I  U      uids=K
SourceConceptualVolumeUID                        3010,0015 I  U      uids=K
SourceEndDateTime                                0018,936A I  D      full=K modif=C
SourceFrameOfReferenceUID                        0064,0003 I  U      uids=K
SourceIdentifier                                 0034,0005 I  D
SourceImageSequence                              0008,2112 I  X/Z/U* uids=K
SourceManufacturer                               300A,0216 I  X      dev=K
SourceOfPreviousValues                           0400,0564 I  Z      inst=K
SourceSerialNumber                               3008,0105 I  X/Z    dev=K
SourceStartDateTime                              0018,9369 I  D      full=K modif=C
SourceStrengthReferenceDate                      300A,022C I  D      full=K modif=C
SourceStrengthReferenceTime                      300A,022E I  D      full=K modif=C
SpecialNeeds                                     0038,0050 -  X      pat=C
SpecimenAccessionNumber                          0040,050A R  X
SpecimenDetailedDescription                      0040,0602 I  X      desc=C
SpecimenIdentifier                               0040,0551 I  D
SpecimenPreparationSequence                      0040,0610 I  Z      struct=C
SpecimenShortDescription                         0040,0600 I  X      desc=C
SpecimenUID                                      0040,0554 I  U      uids=K
StartAcquisitionDateTime                         0018,9516 I  X/D    full=K modif=C
StationAETitle                                   0008,0055 I  X      dev=C
StationName                                      0008,1010 I  X/Z/D  dev=K
StorageMediaFileSetUID                           0088,0140 I  U      uids=K
StructureSetDate                                 3006,0008 I  Z      full=K modif=C
StructureSetDescription                          3006,0006 I  X      desc=C
StructureSetLabel                                3006,0002 I  D      desc=C
StructureSetName                                 3006,0004 I  X      desc=C
StructureSetTime                                 3006,0009 I  Z      full=K modif=C
StudyArrivalDate                                 0032,1040 R  X      full=K modif=C
StudyArrivalTime                                 0032,1041 R  X      full=K modif=C
StudyComments                                    0032,4000 R  X      desc=C
StudyCompletionDate                              0032,1050 R  X      full=K modif=C
StudyCompletionTime                              0032,1051 R  X      full=K modif=C
StudyDate                                        0008,0020 I  Z      full=K modif=C
StudyDescription                                 0008,1030 I  X      desc=C
StudyID                                          0020,0010 I  Z
StudyIDIssuer                                    0032,0012 R  X
StudyInstanceUID                                 0020,000D I  U      uids=K
StudyReadDate                                    0032,0034 R  X      full=K modif=C
StudyReadTime                                    0032,0035 R  X      full=K modif=C
StudyTime                                        0008,0030 I  Z      full=K modif=C
StudyVerifiedDate                                0032,0032 R  X      full=K modif=C
StudyVerifiedTime                                0032,0033 R  X      full=K modif=C
SubstanceAdministrationDateTime                  0044,0010 -  X      full=K modif=C
SynchronizationFrameOfReferenceUID               0020,0200 I  U      uids=K
TableTopPositionAlignmentUID                     300A,0054 I  U      uids=K
TargetUID                                        0018,2042 I  U      uids=K
TelephoneNumberTrial                             0040,A354 R  X
TemplateExtensionCreatorUID                      0040,DB0D R  U      uids=K
TemplateExtensionOrganizationUID                 0040,DB0C R  U      uids=K
TemplateLocalVersion                             0040,DB07 R  X      full=K modif=C
TemplateVersion                                  0040,DB06 R  X      full=K modif=C
TextComments                                     4000,4000 R  X
TextString                                       2030,0020 -  X
Time                                             0040,A122 I  D      full=K modif=C
TimeOfDocumentCreationOrVerbalTransactionTrial   0040,A112 R  X      full=K modif=C
TimeOfLastCalibration                            0018,1201 I  X      dev=K full=K modif=C
TimeOfLastDetectorCalibration                    0018,700E I  X/D    dev=K full=K modif=C
TimeOfSecondaryCapture                           0018,1014 I  X      full=K modif=C
TimezoneOffsetFromUTC                            0008,0201 I  X      full=K modif=C
TopicAuthor                                      0088,0910 R  X
TopicKeywords                                    0088,0912 R  X
TopicSubject                                     0088,0906 R  X
TopicTitle                                       0088,0904 R  X
TrackingUID                                      0062,0021 I  U      uids=K
TransactionUID                                   0008,1195 -  U      uids=K
TransducerIdentificationSequence                 0018,5011 I  X      dev=K
TreatmentControlPointDate                        3008,0024 I  D      full=K modif=C
TreatmentControlPointTime                        3008,0025 I  D      full=K modif=C
TreatmentDate                                    3008,0250 I  X/D    full=K modif=C
TreatmentMachineName                             300A,00B2 I  X/Z    dev=K
TreatmentPositionGroupLabel                      300A,0608 I  D      desc=C
TreatmentPositionGroupUID                        300A,0609 I  U      uids=K
TreatmentSessionUID                              300A,0700 I  U      uids=K
TreatmentSite                                    3010,0077 I  X/D    desc=C
TreatmentSites                                   300A,000B R  X      desc=C
TreatmentTechniqueNotes                          3010,007A I  Z      desc=C
TreatmentTime                                    3008,0251 I  X/D    full=K modif=C
TreatmentToleranceViolationDateTime              300A,0736 I  D      full=K modif=C
TreatmentToleranceViolationDescription           300A,0734 I  D      desc=C
UDISequence                                      0018,100A I  X      dev=K
UID                                              0040,A124 I  U
UniqueDeviceIdentifier                           0018,1009 I  X      dev=K
UserContentLabel                                 3010,0033 I  D      desc=C
UserContentLongLabel                             3010,0034 I  D      desc=C
VerbalSourceTrial                                0040,A352 R  X
VerbalSourceIdentifierCodeSequenceTrial          0040,A358 R  X
VerificationDateTime                             0040,A030 I  D      full=K modif=C
VerifyingObserverIdentificationCodeSequence      0040,A088 I  Z
VerifyingObserverName                            0040,A075 I  D
VerifyingObserverSequence                        0040,A073 I  D
VerifyingOrganization                            0040,A027 I  D
VisitComments                                    0038,4000 -  X      desc=C
WaveformFilterDescription                        003A,0329 I  X      desc=C
XRayDetectorID                                   0018,9371 I  D      dev=K
XRayDetectorLabel                                0018,9373 I  X      dev=K
XRaySourceID                                     0018,9367 I  D      dev=K
"""

_ROW = re.compile(r"(?P<keyword>\S+)\s+(?P<group>[0-9A-F]{4}),(?P<element>[0-9A-F]{4})\s+"
                  r"(?P<flags>-|R|I|RI)\s+(?P<basic>\S+)(?P<options>(?:\s+\w+=\S+)*)")


def _parse(text: str) -> dict[BaseTag, Attribute]:
    attributes: dict[BaseTag, Attribute] = {}
    for line in text.strip().splitlines():
        match = _ROW.fullmatch(line.strip())
        if match is None:
            raise RuntimeError(f"Table E.1-1 line not understood: {line!r}")
        keyword = match["keyword"]
        tag = Tag(int(match["group"] + match["element"], 16))
        if tag_for_keyword(keyword) != tag or keyword_for_tag(tag) != keyword:
            raise RuntimeError(f"Table E.1-1: {keyword} {match['group']},{match['element']} "
                               "does not match pydicom's dictionary")
        options = dict(pair.split("=") for pair in match["options"].split())
        for code in (match["basic"], *options.values()):
            if code not in CODES:
                raise RuntimeError(f"Table E.1-1: {keyword}: unknown action code {code!r}")
        if not set(options) <= set(OPTIONS):
            raise RuntimeError(f"Table E.1-1: {keyword}: unknown option in {sorted(options)}")
        if tag in attributes:
            raise RuntimeError(f"Table E.1-1: {keyword} listed twice")
        attributes[tag] = Attribute(keyword, tag, dictionary_VR(tag), "R" in match["flags"],
                                    "I" in match["flags"], match["basic"],
                                    MappingProxyType(options))
    return attributes


ATTRIBUTES: MappingProxyType[BaseTag, Attribute] = MappingProxyType(_parse(ROWS))
BY_KEYWORD: MappingProxyType[str, Attribute] = MappingProxyType(
    {a.keyword: a for a in ATTRIBUTES.values()})
